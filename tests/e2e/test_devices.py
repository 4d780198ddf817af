from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect


def _names(page: Any) -> list[str]:
    table = page.get_by_role("table", name="Devices")
    expect(table).to_be_visible()
    expect(page.locator(".table-wrap[aria-busy='true']")).to_have_count(0)
    return [str(name) for name in table.locator("tbody tr td:first-child").all_inner_texts()]


def _names_once(page: Any, ready: Callable[[list[str]], bool]) -> list[str]:
    """The names in the table once they satisfy ``ready`` (a filter applies a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        names = _names(page)
        if ready(names):
            return names
        if time.monotonic() > deadline:
            raise AssertionError(f"the device table shows {names}")
        page.wait_for_timeout(100)


def test_device_table_pages_through_the_fleet(page: Any, sign_in: Any, shot: Any) -> None:
    sign_in("vera")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Devices").click()

    first = _names(page)
    assert len(first) == 50
    assert first[0] == "pos-0001"
    expect(page.locator(".pager-page")).to_have_text("Page 1")
    shot("page-1")

    page.get_by_role("button", name="Next").click()
    expect(page.locator(".pager-page")).to_have_text("Page 2")
    second = _names(page)
    assert second[0] == "pos-0051"
    assert second[-1] == "pos-0100"

    page.get_by_role("button", name="Next").click()
    expect(page.locator(".pager-page")).to_have_text("Page 3")
    third = _names(page)
    assert third[0] == "pos-0101"
    expect(page.get_by_role("button", name="Next")).to_be_disabled()

    page.get_by_role("button", name="Previous").click()
    expect(page.locator(".pager-page")).to_have_text("Page 2")
    assert _names(page) == second

    page.get_by_label("Rows per page").select_option("25")
    expect(page.locator(".pager-page")).to_have_text("Page 1")
    assert len(_names(page)) == 25


def test_device_table_filters(page: Any, sign_in: Any, api_as: Any, fleet: Any, shot: Any) -> None:
    sign_in("vera")
    page.goto("/devices")
    _names(page)

    page.get_by_label("Name starts with").fill("pos-011")
    page.get_by_label("Name starts with").press("Enter")
    expect(page).to_have_url(re.compile(r"name_prefix=pos-011"))
    expected_prefix = [f"pos-{n:04d}" for n in range(110, 120)]
    _names_once(page, lambda names: names == expected_prefix)

    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Status").select_option("offline")
    expected = api_as("vera").get("/api/v1/devices", params={"status": "offline"}).json()
    expected_offline = [device["name"] for device in expected["items"]]
    _names_once(page, lambda names: names == expected_offline)
    rows = page.get_by_role("table", name="Devices").locator("tbody tr")
    expect(rows.filter(has_text="online")).to_have_count(0)

    page.get_by_label("Model version").fill("fraud-v2")
    page.get_by_label("Model version").press("Enter")
    expect(page).to_have_url(re.compile(r"model_version=fraud-v2"))
    _names_once(
        page,
        lambda names: (
            bool(names)
            and all(71 <= int(name[4:]) <= 110 and int(name[4:]) % 5 == 0 for name in names)
        ),
    )

    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Cluster").select_option(label=fleet.cluster_name)
    _names_once(page, lambda names: names[:3] == ["pos-0002", "pos-0004", "pos-0006"])

    # A label filter that is not key=value is explained and not sent.
    page.get_by_label("Label", exact=True).fill("store")
    expect(page.get_by_text("write the label as key=value")).to_be_visible()
    page.get_by_label("Label", exact=True).fill("store=s-2")
    page.get_by_label("Label", exact=True).press("Enter")
    expect(page).to_have_url(re.compile(r"label=store%3Ds-2"))
    _names_once(
        page,
        lambda names: (
            bool(names) and all(int(name[4:]) % 4 == 2 and int(name[4:]) % 2 == 0 for name in names)
        ),
    )
    shot("filtered")

    page.get_by_label("Name starts with").fill("no-such-device")
    page.get_by_label("Name starts with").press("Enter")
    expect(page.get_by_text("No device matches these filters.")).to_be_visible()


def test_device_page_shows_model_health_and_last_seen(page: Any, sign_in: Any, fleet: Any) -> None:
    sign_in("vera")
    page.goto("/devices?name_prefix=pos-0007")
    page.get_by_role("link", name="pos-0007").click()

    expect(page.get_by_role("heading", name="pos-0007")).to_be_visible()
    details = page.locator("dl.details")
    expect(details).to_contain_text("fraud-v3")
    expect(details).to_contain_text("online")
    health = json.loads(page.get_by_test_id("health").inner_text())
    assert health == {"outbox_depth": 0, "model_loaded": "fraud-v3"}
    # Last seen: the seeded moment (about now), written in the operator's zone.
    last_seen = details.locator("dt:has-text('Last seen') + dd time")
    expect(last_seen).to_contain_text(str(datetime.now(UTC).year))
    expect(last_seen).to_contain_text(re.compile(r"\d{1,2}:\d{2}:\d{2}\s?[AP]M"))


def test_device_page_charts_latency_flag_rate_and_outbox(
    page: Any, sign_in: Any, fleet: Any, shot: Any
) -> None:
    sign_in("vera")
    windows = fleet.telemetry_windows
    page.goto(f"/devices/{fleet.device_ids[fleet.telemetry_device]}")
    latency = page.get_by_role("img", name="Inference latency")
    expect(latency.locator("circle")).to_have_count(2 * windows)
    expect(latency.locator("circle title").last).to_contain_text("p95 at")
    expect(page.get_by_role("img", name="Flag rate").locator("circle")).to_have_count(windows)
    expect(page.get_by_role("img", name="Outbox depth").locator("circle")).to_have_count(windows)
    # The newest window's outbox depth, not the older health report's.
    expect(page.get_by_test_id("outbox-depth")).to_have_text("1")
    shot("charts")

    page.goto(f"/devices/{fleet.device_ids['pos-0008']}")
    expect(page.get_by_test_id("chart-empty")).to_have_count(3)
    expect(page.get_by_test_id("chart-empty").first).to_have_text(
        "No telemetry in the last 60 minutes."
    )


def test_unknown_device_says_so(page: Any, sign_in: Any, console_errors: Any) -> None:
    console_errors.allow(r"status of 404")
    sign_in("vera")
    page.goto("/devices/00000000-0000-0000-0000-000000000000")
    expect(page.get_by_role("alert")).to_contain_text("does not exist")

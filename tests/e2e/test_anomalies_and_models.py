"""Anomalies (labelling, one by one and in bulk from the keyboard) and models (compare)."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect


def _row_ids(page: Any) -> list[int]:
    rows = page.get_by_test_id("anomaly-row")
    expect(rows.first).to_be_visible()
    return [int(str(row.get_attribute("id")).removeprefix("anomaly-")) for row in rows.all()]


def test_operator_filters_and_labels_an_anomaly(
    page: Any, sign_in: Any, api_as: Any, fleet: Any, shot: Any
) -> None:
    sign_in("otto")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Anomalies").click()
    table = page.get_by_role("table", name="Anomalies")
    expect(table.get_by_test_id("anomaly-row")).to_have_count(len(fleet.anomaly_ids))

    # The device is searched by name: what is typed brings suggestions.
    device = page.get_by_label("Device")
    device.fill("pos-000")
    suggestions = page.locator(f"datalist[id='{device.get_attribute('list')}'] option")
    expect(suggestions).to_have_count(9)
    expect(suggestions.nth(3)).to_have_attribute("value", "pos-0004")
    device.fill("pos-00")
    device.press("Enter")
    expect(page.get_by_text("no device is named pos-00")).to_be_visible()
    device.fill("pos-0004")
    device.press("Enter")
    expect(page).to_have_url(re.compile(f"device_id={fleet.device_ids['pos-0004']}"))
    expect(device).to_have_value("pos-0004")
    rows = table.get_by_test_id("anomaly-row")
    expect(rows).to_have_count(4)
    for text in rows.all_inner_texts():
        assert "pos-0004" in text
    first_id = _row_ids(page)[0]

    row = page.locator(f"#anomaly-{first_id}")
    row.get_by_role("button", name="Fraud", exact=True).click()
    expect(page.get_by_text("1 anomaly marked fraud.")).to_be_visible()
    expect(row).to_contain_text("fraud")
    expect(row.get_by_role("button", name="Fraud", exact=True)).to_be_disabled()
    shot("labelled")
    stored = api_as("vera").get(f"/api/v1/anomalies/{first_id}").json()
    assert stored["label"] == "confirmed_fraud"
    assert stored["label_source"] == "operator"
    assert stored["labelled_by"] == "otto"

    # Filter on the label: only the one just labelled is left.
    page.get_by_role("combobox", name=re.compile(r"^Label")).select_option("confirmed_fraud")
    expect(rows).to_have_count(1)
    page.get_by_label("Score from").fill("1.5")
    expect(page.get_by_text("a score from 0 to 1")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(len(fleet.anomaly_ids))


def test_operator_labels_in_bulk_from_the_keyboard(
    page: Any, sign_in: Any, api_as: Any, fleet: Any, shot: Any
) -> None:
    sign_in("otto")
    page.goto("/anomalies?label=unlabelled")
    ids = _row_ids(page)
    assert len(ids) >= 3

    for key in ("j", "x", "j", "x", "j"):
        page.keyboard.press(key)
    expect(page.locator(f"#anomaly-{ids[2]}")).to_have_attribute("aria-current", "true")
    expect(page.get_by_text("2 selected")).to_be_visible()
    expect(page.get_by_role("button", name="False positive (2)")).to_be_visible()
    shot("selected")
    page.keyboard.press("n")
    expect(page.get_by_text("2 anomalies marked false positive.")).to_be_visible()
    expect(page.get_by_text("2 selected")).to_have_count(0)

    # Nothing selected: f labels the focused row alone.
    page.keyboard.press("f")
    expect(page.get_by_text("1 anomaly marked fraud.")).to_be_visible()

    viewer = api_as("vera")
    labels = [viewer.get(f"/api/v1/anomalies/{i}").json()["label"] for i in ids[:4]]
    assert labels == ["false_positive", "false_positive", "confirmed_fraud", None]

    # Bulk through the buttons: select all, confirm fraud.
    page.get_by_label("Select all").check()
    page.get_by_role("button", name=re.compile(r"^Confirm fraud \(\d+\)$")).click()
    expect(page.get_by_text(re.compile(r"\d+ anomalies marked fraud\."))).to_be_visible()
    listed = viewer.get("/api/v1/anomalies", params={"label": "unlabelled"}).json()["items"]
    assert not {item["id"] for item in listed} & set(ids)


def test_viewer_sees_anomalies_without_label_controls(
    page: Any, sign_in: Any, fleet: Any, shot: Any
) -> None:
    sign_in("vera")
    page.goto("/anomalies")
    rows = page.get_by_test_id("anomaly-row")
    expect(rows).to_have_count(len(fleet.anomaly_ids))
    expect(page.get_by_role("checkbox", name=re.compile("^Select"))).to_have_count(0)
    expect(page.get_by_role("button", name="Fraud", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Not fraud")).to_have_count(0)
    expect(page.get_by_text("f fraud")).to_have_count(0)

    # The shortcuts do nothing for a viewer either.
    page.keyboard.press("j")
    page.keyboard.press("f")
    page.wait_for_timeout(300)
    expect(page.get_by_text(re.compile(r"marked"))).to_have_count(0)


def test_models_page_shows_and_compares_two_versions(
    page: Any, sign_in: Any, fleet: Any, shot: Any
) -> None:
    sign_in("vera")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    table = page.get_by_role("table", name="Model versions")
    old = table.get_by_role("row").filter(has=page.get_by_label("Compare fraud-1"))
    new = table.get_by_role("row").filter(has=page.get_by_label("Compare fraud-2"))
    expect(old).to_contain_text("stable")
    expect(old).to_contain_text("snap-2026-11-01")
    expect(new).to_contain_text("candidate")
    expect(new).to_contain_text("fraud-1")  # its parent
    expect(new).to_contain_text("abc1232")
    expect(page.get_by_text("Tick two versions above to compare them.")).to_be_visible()

    # The ticks live in the URL, so they show once the navigation has settled.
    for label in ("Compare fraud-1", "Compare fraud-2"):
        page.get_by_label(label).click()
        expect(page.get_by_label(label)).to_be_checked()
    expect(page).to_have_url(re.compile(r"compare="))
    compare = page.get_by_role("table", name="Comparison")
    expect(compare.get_by_role("columnheader")).to_contain_text(["", "fraud-1", "fraud-2"])
    pr_auc = compare.get_by_role("row").filter(has_text="pr_auc")
    expect(pr_auc).to_contain_text("0.8100")
    expect(pr_auc).to_contain_text("0.8600")
    expect(pr_auc).to_contain_text("+0.0500")
    expect(compare.get_by_role("row").filter(has_text="brier")).to_contain_text("—")
    expect(compare.get_by_role("row").filter(has_text="Threshold")).to_contain_text(
        "\u22120.0200"
    )  # minus sign
    expect(compare.get_by_role("row").filter(has_text="Dataset snapshot")).to_contain_text(
        "differs"
    )
    shot("compared")

    # The pair is in the URL: a reload shows the same comparison.
    page.reload()
    expect(page.get_by_role("table", name="Comparison")).to_contain_text("+0.0500")


def test_new_anomalies_arrive_while_the_page_is_open(
    page: Any, sign_in: Any, engine: Any, fleet: Any, shot: Any
) -> None:
    from sqlalchemy.orm import Session

    from server.core.db import utcnow
    from tests.e2e.conftest import ANOMALY_COUNT, add_anomaly

    sign_in("vera")
    page.goto("/anomalies")
    rows = page.get_by_test_id("anomaly-row")
    expect(rows).to_have_count(len(fleet.anomaly_ids))
    with Session(engine) as session:
        new_id = add_anomaly(session, fleet, ANOMALY_COUNT + 1, utcnow())
        session.commit()
    # The list polls every 5 s: the new event shows up at the top, without a reload.
    expect(rows.first).to_have_attribute("id", f"anomaly-{new_id}", timeout=12_000)
    expect(rows.first).to_have_class(re.compile("row-new"))
    expect(rows).to_have_count(len(fleet.anomaly_ids))
    shot("arrived")


def test_anomalies_page_shows_why_the_list_failed(
    page: Any, sign_in: Any, console_errors: Any, shot: Any
) -> None:
    sign_in("vera")
    console_errors.allow(r"status of 503")
    page.route(
        re.compile(r"/api/v1/anomalies\?"),
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            body=json.dumps({"status": 503, "detail": "the database is down"}),
        ),
    )
    page.goto("/anomalies")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Error 503")
    expect(alert).to_contain_text("the database is down")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    shot("failed")
    page.unroute(re.compile(r"/api/v1/anomalies\?"))
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_test_id("anomaly-row").first).to_be_visible()

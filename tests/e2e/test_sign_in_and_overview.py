from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect


def test_sign_in_leads_to_the_overview(page: Any, api_as: Any, fleet: Any) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    page.get_by_label("User name").fill("otto")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_test_id("account")).to_contain_text("otto")
    expect(page.get_by_test_id("account")).to_contain_text("operator")

    summary = api_as("vera").get("/api/v1/devices/summary").json()
    for name, count in (
        ("devices", summary["total"]),
        ("online", summary["by_status"]["online"]),
        ("offline", summary["by_status"]["offline"]),
        ("revoked", summary["by_status"]["revoked"]),
    ):
        expect(page.get_by_test_id(f"stat-{name}")).to_have_text(f"{count:,}")

    models = page.get_by_role("table", name="Models in use")
    for usage in summary["by_model_version"]:
        label = usage["model_version"] or "none reported"
        row = models.get_by_role("row").filter(has_text=label)
        expect(row).to_contain_text(str(usage["devices"]))

    events = page.get_by_role("table", name="Recent audit events")
    expect(events.get_by_role("row")).to_have_count(11)  # header and ten events
    # Newest first: the sign-in that just happened.
    expect(events.get_by_role("row").nth(1)).to_contain_text("otto")
    expect(events.get_by_role("row").nth(1)).to_contain_text("auth.sign_in")
    # Times are in the browser's time zone, and the page says which.
    expect(page.get_by_text("Times are shown in America/New_York.")).to_be_visible()


def test_session_survives_a_reload_and_sign_out_ends_it(page: Any, sign_in: Any) -> None:
    sign_in("vera")
    page.goto("/devices?status=offline")
    page.reload()
    expect(page.get_by_role("heading", name="Devices")).to_be_visible()
    expect(page.get_by_label("Status")).to_have_value("offline")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto("/devices")
    expect(page).to_have_url(re.compile(r"/sign-in$"))


def test_a_wrong_password_shows_the_servers_reason(page: Any, console_errors: Any) -> None:
    console_errors.allow(r"status of 401")
    page.goto("/sign-in")
    page.get_by_label("User name").fill("otto")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Error 401")
    expect(alert).to_contain_text("wrong user name or password")
    expect(page).to_have_url(re.compile(r"/sign-in$"))

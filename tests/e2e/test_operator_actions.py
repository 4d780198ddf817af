"""What operators change from the dashboard, checked in the page and through the API."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect


def test_operator_registers_a_cluster_and_sees_it(
    page: Any, sign_in: Any, api_as: Any, console_errors: Any, shot: Any
) -> None:
    sign_in("otto")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Clusters").click()
    page.get_by_role("button", name="Register cluster").click()

    form = page.get_by_role("form", name="Register cluster")
    form.get_by_label("Name").fill("store-us-2")
    form.get_by_label("Kind").select_option("eks")
    form.get_by_label("Region").fill("us-east-2")
    form.get_by_role("button", name="Add label").click()
    form.get_by_label("Label 1 key").fill("tier")
    form.get_by_label("Label 1 value").fill("gold")
    shot("form")
    form.get_by_role("button", name="Register", exact=True).click()

    expect(page.get_by_text("Cluster store-us-2 registered.")).to_be_visible()
    row = (
        page.get_by_role("table", name="Clusters").get_by_role("row").filter(has_text="store-us-2")
    )
    expect(row).to_contain_text("Amazon EKS")
    expect(row).to_contain_text("us-east-2")
    expect(row).to_contain_text("tier=gold")
    stored = api_as("vera").get("/api/v1/clusters").json()["items"]
    assert {"name": "store-us-2", "kind": "eks"}.items() <= next(
        c for c in stored if c["name"] == "store-us-2"
    ).items()

    # The same name again: the API's reason is shown in the form.
    console_errors.allow(r"status of 409")
    page.get_by_role("button", name="Register cluster").click()
    form.get_by_label("Name").fill("store-us-2")
    form.get_by_role("button", name="Register", exact=True).click()
    expect(form.get_by_role("alert")).to_contain_text("a cluster named 'store-us-2' exists")


def test_operator_edits_labels_and_revokes_a_device(
    page: Any, sign_in: Any, api_as: Any, fleet: Any, shot: Any
) -> None:
    device_id = fleet.device_ids["pos-0119"]
    sign_in("otto")
    page.goto(f"/devices/{device_id}")
    expect(page.get_by_role("heading", name="pos-0119")).to_be_visible()

    page.get_by_role("button", name="Edit labels").click()
    page.get_by_role("button", name="Add label").click()
    page.get_by_label("Label 3 key").fill("till")
    page.get_by_label("Label 3 value").fill("7")
    page.get_by_role("button", name="Save labels").click()
    expect(page.get_by_text("Labels of pos-0119 saved.")).to_be_visible()
    expect(page.locator(".labels-view")).to_contain_text("till=7")
    device = api_as("vera").get(f"/api/v1/devices/{device_id}").json()
    assert device["labels"]["till"] == "7"

    page.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Its credentials stop working at once")
    shot("confirm-revoke")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert api_as("vera").get(f"/api/v1/devices/{device_id}").json()["status"] != "revoked"

    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke device").click()
    expect(page.get_by_text("pos-0119 is revoked.")).to_be_visible()
    expect(page.get_by_role("heading", name="pos-0119")).to_contain_text("revoked")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    assert api_as("vera").get(f"/api/v1/devices/{device_id}").json()["status"] == "revoked"


def test_operator_creates_copies_and_revokes_an_enrollment_token(
    page: Any, sign_in: Any, fleet: Any, shot: Any
) -> None:
    sign_in("otto")
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Enrollment tokens"
    ).click()
    form = page.get_by_role("form", name="Create enrollment token")
    form.get_by_label("Description").fill("store 9 till 2")
    form.get_by_label("Cluster").select_option(label=fleet.cluster_name)
    form.get_by_role("button", name="Create token").click()

    token_box = page.get_by_test_id("new-token")
    expect(token_box).to_have_value(re.compile(r"^epe_"))
    token = token_box.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    shot("shown-once")
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_test_id("new-token")).to_have_count(0)

    row = (
        page.get_by_role("table", name="Enrollment tokens")
        .get_by_role("row")
        .filter(has_text="store 9 till 2")
    )
    expect(row).to_contain_text(token[:10])
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(row).to_have_count(0)
    page.get_by_label("Show used and revoked").check()
    expect(
        page.get_by_role("table", name="Enrollment tokens")
        .get_by_role("row")
        .filter(has_text="store 9 till 2")
    ).to_contain_text("revoked")

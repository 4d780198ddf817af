"""Rollouts from the dashboard: start one, watch it move a step, pause, resume, abort."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect


def test_operator_starts_a_rollout_and_sees_it_move_a_step(
    page: Any, sign_in: Any, api_as: Any, advance_rollout: Any, shot: Any
) -> None:
    sign_in("otto")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rollouts").click()
    expect(page.get_by_role("heading", name="Rollouts")).to_be_visible()
    page.get_by_role("link", name="Start rollout").click()

    form = page.get_by_role("form", name="Start rollout")
    form.get_by_label("Model", exact=True).select_option(label="fraud-2")
    form.get_by_label("Target", exact=True).select_option("selector")
    form.get_by_label("Label 1 key").fill("store")
    form.get_by_label("Label 1 value").fill("s-1")
    # The defaults' four steps become two: half at once, then everyone after a soak.
    expect(form.get_by_test_id("step-row")).to_have_count(4)
    form.get_by_role("button", name="Remove step 4").click()
    form.get_by_role("button", name="Remove step 3").click()
    form.get_by_label("Step 1 percent").fill("50")
    form.get_by_label("Step 1 soak seconds").fill("0")
    form.get_by_label("Step 1 minimum devices").fill("0")
    form.get_by_label("Step 2 percent").fill("100")
    form.get_by_label("Step 2 soak seconds").fill("600")
    form.get_by_label("Step 2 minimum devices").fill("1")
    shot("form")
    form.get_by_role("button", name="Start rollout").click()

    expect(page).to_have_url(re.compile(r"/rollouts/[0-9a-f-]{36}$"))
    rollout_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_contain_text("running")
    expect(page.get_by_test_id("current-step")).to_have_text("1 of 2 · 50%")
    expect(page.get_by_text("15 of 30 devices on the new model")).to_be_visible()
    expect(page.get_by_text("Replacing fraud-1")).to_be_visible()
    shot("step-1")

    # The worker analyses the rollout: step 1 passes, and the page follows by itself.
    advance_rollout(rollout_id)
    expect(page.get_by_test_id("current-step")).to_have_text("2 of 2 · 100%", timeout=15_000)
    expect(page.get_by_text("30 of 30 devices on the new model")).to_be_visible()
    expect(page.get_by_test_id("verdict")).to_contain_text("pass")
    timeline = page.get_by_role("list", name="Timeline")
    expect(timeline).to_contain_text("step 1 passed")
    expect(timeline).to_contain_text("step 2 of 2")
    expect(page.get_by_test_id("soak-remaining")).to_contain_text("left")
    shot("step-2")

    listed = api_as("vera").get(f"/api/v1/rollouts/{rollout_id}").json()
    assert (listed["state"], listed["current_step"], listed["cohort_size"]) == ("running", 1, 30)

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("paused")
    expect(page.get_by_test_id("soak-remaining")).to_contain_text("(paused)")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("running")

    page.get_by_role("button", name="Abort").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("canary devices go back to fraud-1")
    dialog.get_by_role("button", name="Abort rollout").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("aborted")
    expect(page.get_by_test_id("decision")).to_have_text("aborted by otto")
    for name in ("Pause", "Promote", "Abort"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()

    page.get_by_role("link", name="← Rollouts").click()
    row = page.get_by_role("table", name="Rollouts").get_by_role("row").filter(has_text="fraud-2")
    expect(row.first).to_contain_text("aborted")
    expect(row.first.get_by_test_id("rollout-step")).to_have_text("2/2 · 100%")


def test_the_servers_reason_is_shown_when_a_rollout_cannot_start(
    page: Any, sign_in: Any, console_errors: Any
) -> None:
    console_errors.allow(r"status of 422")
    sign_in("otto")
    page.goto("/rollouts/new")
    form = page.get_by_role("form", name="Start rollout")
    form.get_by_label("Model", exact=True).select_option(label="fraud-2")
    # Steps must grow to 100%: the last default step at 80% is refused by the server.
    form.get_by_label("Step 4 percent").fill("80")
    form.get_by_role("button", name="Start rollout").click()
    expect(form.get_by_role("alert")).to_contain_text("the last step must be 100%")
    expect(page).to_have_url(re.compile(r"/rollouts/new$"))

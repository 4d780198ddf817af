"""Retraining from the dashboard: what fired each run and the gate's verdict; retrain now."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from playwright.sync_api import expect


def test_operator_reads_why_runs_ended_as_they_did(
    page: Any, sign_in: Any, fleet: Any, shot: Any
) -> None:
    sign_in("otto")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Retraining").click()
    expect(page.get_by_role("heading", name="Retraining", level=1)).to_be_visible()

    runs = page.get_by_role("table", name="Training runs").get_by_test_id("training-run")
    drift = runs.filter(has_text="drift")
    expect(drift).to_contain_text("recall of fraud-1")
    expect(drift).to_contain_text("registered")
    expect(drift.get_by_role("link", name="fraud-2")).to_be_visible()
    scheduled = runs.filter(has_text="schedule")
    expect(scheduled).to_contain_text("rejected")
    expect(scheduled).to_contain_text("worse than stable beyond the margin: PR-AUC 0.7400")

    drift.get_by_role("button", name="Details").click()
    details = page.get_by_test_id("run-details")
    checks = details.get_by_role("table", name="Drift checks")
    expect(checks.get_by_role("row").filter(has_text="recall")).to_contain_text("fired")
    expect(checks.get_by_role("row").filter(has_text="flag rate")).to_contain_text("quiet")
    gate = details.get_by_role("table", name="Gate")
    expect(gate.get_by_role("row").filter(has_text="PR-AUC")).to_contain_text("0.8600")
    expect(gate.get_by_role("row").filter(has_text="PR-AUC")).to_contain_text("0.8100")
    expect(details).to_contain_text("41,250 transactions, 388 of them fraud")
    shot("details")

    # The registered candidate links to its comparison with the stable model.
    drift.get_by_role("link", name="fraud-2").click()
    expect(page).to_have_url(
        re.compile(f"/models\\?compare={fleet.model_ids['fraud-1']},{fleet.model_ids['fraud-2']}$")
    )
    expect(page.get_by_role("table", name="Comparison")).to_be_visible()


def test_operator_asks_for_a_run_and_sees_it_queued(
    page: Any, sign_in: Any, api_as: Any, shot: Any
) -> None:
    sign_in("otto")
    page.goto("/training")
    form = page.get_by_role("form", name="Retrain now")
    before = api_as("vera").get("/api/v1/training/runs").json()["items"]

    form.get_by_label("Hours of fleet data").fill("-3")
    form.get_by_role("button", name="Retrain now").click()
    expect(form.get_by_text("the hours of fleet data must be a positive number")).to_be_visible()
    assert api_as("vera").get("/api/v1/training/runs").json()["items"] == before

    form.get_by_label("Hours of fleet data").fill("6")
    form.get_by_label("Note").fill("after the chargeback batch")
    form.get_by_role("button", name="Retrain now").click()
    expect(page.get_by_role("status").filter(has_text="Run queued")).to_be_visible()
    newest = page.get_by_role("table", name="Training runs").get_by_test_id("training-run").first
    expect(newest).to_contain_text("on demand")
    expect(newest).to_contain_text("otto: after the chargeback batch")
    expect(newest).to_contain_text("queued")
    expect(page.get_by_test_id("run-details")).to_contain_text("after the chargeback batch")
    shot("queued")

    stored = api_as("vera").get("/api/v1/training/runs", params={"trigger": "on_demand"}).json()
    run = stored["items"][0]
    assert (run["state"], run["requested_by"], run["note"]) == (
        "queued",
        "otto",
        "after the chargeback batch",
    )
    window = datetime.fromisoformat(run["window_end"]) - datetime.fromisoformat(run["window_start"])
    assert abs(window - timedelta(hours=6)) < timedelta(minutes=1)

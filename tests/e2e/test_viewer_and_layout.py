"""A viewer sees no control that changes anything; the pages fit a narrow window."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

# Buttons that only read, page or navigate: the only ones a viewer may see.
READ_ONLY_BUTTONS = {
    "Sign out",
    "Refresh",
    "Previous",
    "Next",
    "Try again",
    "Clear filters",
    "Load older",
    "Details",
    "Hide",
}


def _buttons(page: Any) -> set[str]:
    page.wait_for_load_state("networkidle")
    expect(page.locator(".loading")).to_have_count(0)
    return {
        text.strip()
        for text in page.locator("button:visible, [role=button]:visible").all_inner_texts()
    }


@pytest.fixture
def rollout_id(api_as: Any, advance_rollout: Any, fleet: Any) -> Iterator[str]:
    """A rollout on one store's devices, one step in (so it has an analysis); aborted after."""
    operator = api_as("otto")
    response = operator.post(
        "/api/v1/rollouts",
        json={
            "model_id": fleet.model_ids["fraud-2"],
            "target": {"kind": "selector", "labels": {"store": "s-2"}},
            "steps": [
                {"percent": 50, "soak_seconds": 0, "min_devices": 0},
                {"percent": 100, "soak_seconds": 600, "min_devices": 1},
            ],
        },
    )
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    advance_rollout(created)
    yield created
    operator.post(f"/api/v1/rollouts/{created}/abort")


def test_viewer_sees_no_mutating_controls(
    page: Any, sign_in: Any, fleet: Any, rollout_id: str, console_errors: Any, shot: Any
) -> None:
    sign_in("vera")
    expect(page.get_by_test_id("account")).to_contain_text("viewer")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Enrollment tokens")).to_have_count(0)

    visited = {
        "overview": "/",
        "devices": "/devices",
        "device": f"/devices/{fleet.device_ids['pos-0002']}",
        "clusters": "/clusters",
        "anomalies": "/anomalies",
        "models": "/models",
        "training": "/training",
        "rollouts": "/rollouts",
        "rollout": f"/rollouts/{rollout_id}",
    }
    for name, path in visited.items():
        page.goto(path)
        buttons = _buttons(page)
        assert buttons <= READ_ONLY_BUTTONS, (name, buttons - READ_ONLY_BUTTONS)
        shot(name)
        if name == "training":
            expect(page.get_by_role("form", name="Retrain now")).to_have_count(0)
            expect(page.get_by_test_id("training-run").first).to_be_visible()
        if name == "overview":
            chart = page.get_by_role("img", name=re.compile(r"^Anomalies per minute"))
            expect(chart).to_be_visible()
            expect(chart.locator("circle")).to_have_count(60)
    expect(page.get_by_test_id("current-step")).to_have_text("2 of 2 · 100%")
    expect(page.get_by_role("list", name="Timeline")).to_contain_text("step 1 passed")

    page.goto("/rollouts")
    expect(page.get_by_role("link", name="Start rollout")).to_have_count(0)
    page.goto("/rollouts/new")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert _buttons(page) <= READ_ONLY_BUTTONS

    page.goto("/enrollment-tokens")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert _buttons(page) <= READ_ONLY_BUTTONS


def test_pages_fit_a_narrow_window(
    page: Any, sign_in: Any, fleet: Any, rollout_id: str, shot: Any
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in("otto")
    for name, path in {
        "overview": "/",
        "devices": "/devices",
        "device": f"/devices/{fleet.device_ids['pos-0004']}",
        "clusters": "/clusters",
        "anomalies": "/anomalies",
        "models": f"/models?compare={fleet.model_ids['fraud-1']},{fleet.model_ids['fraud-2']}",
        "training": "/training",
        "rollouts": "/rollouts",
        "rollout": f"/rollouts/{rollout_id}",
        "start-rollout": "/rollouts/new",
        "tokens": "/enrollment-tokens",
    }.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        expect(page.locator(".loading")).to_have_count(0)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
        shot(name)
    expect(page).to_have_url(re.compile(r"/enrollment-tokens$"))

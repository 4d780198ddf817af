"""The analysis rules on numbers alone: canary against stable, and the verdict."""

from __future__ import annotations

from datetime import UTC, datetime

from server.rollouts.analysis import CohortNumbers, analyse
from server.rollouts.schemas import AnalysisRead, AnalysisThresholds, MetricCheck

LIMITS = AnalysisThresholds(min_scored=60, min_labelled=20)
AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def side(
    scored: int,
    flagged: int,
    *,
    confirmed: int = 0,
    false_positives: int = 0,
    devices: int = 3,
) -> CohortNumbers:
    return CohortNumbers(
        devices=devices,
        scored=scored,
        flagged=flagged,
        inference_errors=0,
        model_load_failures=0,
        latency_p95_ms=2.0,
        confirmed_fraud=confirmed,
        false_positives=false_positives,
    )


def judge(
    canary: CohortNumbers, stable: CohortNumbers | None, *, soak_left: float = 0.0
) -> AnalysisRead:
    return analyse(
        at=AT,
        step=0,
        canary=canary,
        stable=stable,
        limits=LIMITS,
        cohort_devices=3,
        min_devices=1,
        soak_remaining_seconds=soak_left,
    )


def flag_check(analysis: AnalysisRead) -> MetricCheck:
    return next(check for check in analysis.checks if check.metric == "flag_rate")


def test_a_few_flags_on_small_cohorts_are_chance_not_a_failure() -> None:
    # The stable side flagged nothing in 114 transactions, the canary 4 in 65: a point
    # rule (3 x 0 + 0.5 points) would roll this back.
    analysis = judge(side(65, 4), side(114, 0))
    assert analysis.verdict == "pass", analysis.reason
    assert flag_check(analysis).passed is True


def test_a_model_that_flags_everything_fails_at_once_mid_soak() -> None:
    analysis = judge(side(200, 200), side(200, 2), soak_left=300)
    assert analysis.verdict == "fail"
    check = flag_check(analysis)
    assert (check.passed, check.limit, check.note) == (False, 0.2, "above the absolute limit")
    assert "flag_rate 1 on canary against 0.01 on stable (limit 0.2)" in analysis.reason


def test_without_a_stable_side_the_absolute_limit_decides() -> None:
    assert judge(side(500, 50), None).verdict == "pass"
    assert judge(side(500, 150), None).verdict == "fail"


def test_a_higher_rate_waits_for_labels_through_the_soak_then_fails() -> None:
    canary, stable = side(2_000, 200), side(4_000, 80)
    waiting = judge(canary, stable, soak_left=60)
    assert waiting.verdict == "wait"
    assert flag_check(waiting).passed is None
    assert "waiting for 20 labelled anomalies a side" in waiting.reason

    after_soak = judge(canary, stable)
    assert after_soak.verdict == "fail"
    assert "too few labels by the end of the soak" in flag_check(after_soak).note


def test_a_higher_rate_with_precision_holding_passes() -> None:
    """A retrained model that catches the new fraud flags more, and its flags are fraud."""
    canary = side(2_000, 200, confirmed=45, false_positives=15)
    stable = side(4_000, 80, confirmed=24, false_positives=8)
    analysis = judge(canary, stable)
    assert analysis.verdict == "pass", analysis.reason
    check = flag_check(analysis)
    assert check.passed is True
    assert "precision on labelled anomalies holds" in check.note


def test_a_higher_rate_of_false_alarms_fails_on_both_counts() -> None:
    canary = side(2_000, 200, confirmed=5, false_positives=40)
    stable = side(4_000, 80, confirmed=24, false_positives=8)
    analysis = judge(canary, stable, soak_left=60)
    assert analysis.verdict == "fail"
    failed = {check.metric for check in analysis.checks if check.passed is False}
    assert failed == {"flag_rate", "precision"}


def test_a_model_that_stopped_flagging_fails() -> None:
    analysis = judge(side(3_000, 0), side(3_000, 150))
    assert analysis.verdict == "fail"
    assert flag_check(analysis).note == "lower than stable beyond chance"


def test_too_few_canary_transactions_give_no_verdict() -> None:
    analysis = judge(side(30, 30), side(3_000, 30))
    assert flag_check(analysis).passed is None
    assert analysis.verdict == "wait"

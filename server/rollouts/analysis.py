"""Canary against stable: the checks of one analysis and the verdict they add up to.

Pure functions over numbers the service gathers, so every rule can be read (and
tested) without a database. A check without enough data is neither passed nor failed
(``passed`` is None): it never fails a step, and a step whose devices must report
waits until they have. The one exception is a flag rate above stable's that labels
have not yet explained: the step waits for them through its soak, then fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.common.stats import rate_interval
from server.rollouts.schemas import AnalysisRead, AnalysisThresholds, MetricCheck, Verdict


@dataclass(frozen=True, slots=True)
class CohortNumbers:
    """Telemetry and labels of one side (canary or stable) since the rollout began."""

    devices: int
    scored: int
    flagged: int
    inference_errors: int
    model_load_failures: int
    latency_p95_ms: float
    confirmed_fraud: int
    false_positives: int

    @property
    def flag_rate(self) -> float:
        return self.flagged / self.scored if self.scored else 0.0

    @property
    def inference_error_rate(self) -> float:
        return self.inference_errors / self.scored if self.scored else 0.0

    @property
    def labelled(self) -> int:
        return self.confirmed_fraud + self.false_positives

    @property
    def precision(self) -> float:
        return self.confirmed_fraud / self.labelled if self.labelled else 0.0


def _load_failures(canary: CohortNumbers, limits: AnalysisThresholds) -> MetricCheck:
    return MetricCheck(
        metric="model_load_failures",
        unit="count",
        canary=float(canary.model_load_failures),
        stable=None,
        limit=float(limits.max_load_failures),
        passed=canary.model_load_failures <= limits.max_load_failures,
    )


def _inference_errors(
    canary: CohortNumbers, stable: CohortNumbers | None, limits: AnalysisThresholds
) -> MetricCheck:
    baseline = stable.inference_error_rate if stable and stable.scored else 0.0
    limit = baseline + limits.max_inference_error_rate
    enough = canary.scored >= limits.min_scored
    return MetricCheck(
        metric="inference_error_rate",
        unit="ratio",
        canary=canary.inference_error_rate if canary.scored else None,
        stable=stable.inference_error_rate if stable and stable.scored else None,
        limit=limit,
        passed=canary.inference_error_rate <= limit if enough else None,
        note="" if enough else f"fewer than {limits.min_scored} canary transactions",
    )


def _latency(
    canary: CohortNumbers, stable: CohortNumbers | None, limits: AnalysisThresholds
) -> MetricCheck:
    comparable = stable is not None and stable.scored >= limits.min_scored
    enough = canary.scored >= limits.min_scored
    limit = (
        (stable.latency_p95_ms + limits.latency_slack_ms) * limits.max_latency_p95_ratio
        if stable is not None and comparable
        else None
    )
    passed = None
    if enough and limit is not None:
        passed = canary.latency_p95_ms <= limit
    note = ""
    if not enough:
        note = f"fewer than {limits.min_scored} canary transactions"
    elif limit is None:
        note = "no stable devices to compare with"
    return MetricCheck(
        metric="latency_p95_ms",
        unit="ms",
        canary=canary.latency_p95_ms if canary.scored else None,
        stable=stable.latency_p95_ms if stable and stable.scored else None,
        limit=limit,
        passed=passed,
        note=note,
    )


@dataclass(frozen=True, slots=True)
class FlagRateCheck:
    check: MetricCheck
    awaiting_labels: bool
    """Significantly above stable, with too few labels yet to say whether the extra flags
    are fraud: the step may not pass, and fails if its soak ends like this."""


def _flag_rate(
    canary: CohortNumbers,
    stable: CohortNumbers | None,
    limits: AnalysisThresholds,
    precision: MetricCheck,
) -> FlagRateCheck:
    """Flagging much more or much less than stable, beyond what chance explains.

    A canary that flags above ``max_flag_rate`` fails at once. Against stable, the
    canary's interval must lie wholly above (or below) stable's interval scaled by
    ``max_flag_rate_ratio`` plus ``flag_rate_slack``. Flagging more is what a model does
    that catches fraud the stable one misses (a retrained model after drift), so a
    higher rate is accepted when the canary's precision on labelled anomalies holds;
    until there are labels enough to tell, the step waits for them through its soak.
    """
    rate = canary.flag_rate
    canary_value = rate if canary.scored else None
    stable_value = stable.flag_rate if stable and stable.scored else None

    def result(
        limit: float | None, passed: bool | None, note: str = "", *, awaiting: bool = False
    ) -> FlagRateCheck:
        check = MetricCheck(
            metric="flag_rate",
            unit="ratio",
            canary=canary_value,
            stable=stable_value,
            limit=limit,
            passed=passed,
            note=note,
        )
        return FlagRateCheck(check=check, awaiting_labels=awaiting)

    if canary.scored < limits.min_scored:
        return result(None, None, f"fewer than {limits.min_scored} canary transactions")
    low, high = rate_interval(canary.flagged, canary.scored)
    if low > limits.max_flag_rate:
        return result(limits.max_flag_rate, False, "above the absolute limit")
    if stable is None or stable.scored < limits.min_scored:
        return result(
            limits.max_flag_rate, True, "no stable devices to compare with: absolute limit"
        )
    stable_low, stable_high = rate_interval(stable.flagged, stable.scored)
    upper = stable_high * limits.max_flag_rate_ratio + limits.flag_rate_slack
    lower = max(stable_low / limits.max_flag_rate_ratio - limits.flag_rate_slack, 0.0)
    if high < lower:
        return result(lower, False, "lower than stable beyond chance")
    if low <= upper:
        return result(upper if rate >= stable.flag_rate else lower, True)
    if precision.passed is True:
        return result(upper, True, "higher than stable, and precision on labelled anomalies holds")
    if precision.passed is False:
        return result(upper, False, "higher than stable, and precision fell")
    return result(
        upper,
        None,
        f"higher than stable; waiting for {limits.min_labelled} labelled anomalies a side "
        "to tell fraud from false alarms",
        awaiting=True,
    )


def _precision(
    canary: CohortNumbers, stable: CohortNumbers | None, limits: AnalysisThresholds
) -> MetricCheck:
    enough = (
        stable is not None
        and canary.labelled >= limits.min_labelled
        and stable.labelled >= limits.min_labelled
    )
    limit = stable.precision - limits.max_precision_drop if stable is not None and enough else None
    return MetricCheck(
        metric="precision",
        unit="ratio",
        canary=canary.precision if canary.labelled else None,
        stable=stable.precision if stable and stable.labelled else None,
        limit=limit,
        passed=canary.precision >= limit if limit is not None else None,
        note="" if enough else f"fewer than {limits.min_labelled} labelled anomalies a side",
    )


def _describe(check: MetricCheck) -> str:
    def show(value: float | None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.4g}"

    return (
        f"{check.metric} {show(check.canary)} on canary against {show(check.stable)} on "
        f"stable (limit {show(check.limit)})"
    )


def analyse(
    *,
    at: datetime,
    step: int,
    canary: CohortNumbers,
    stable: CohortNumbers | None,
    limits: AnalysisThresholds,
    cohort_devices: int,
    min_devices: int,
    soak_remaining_seconds: float,
) -> AnalysisRead:
    """Compare the cohorts. A failed check fails at once, soak or not; a pass needs the
    soak over, enough devices reporting on the new model and, if any must report,
    enough transactions for the rates to mean something."""
    precision = _precision(canary, stable, limits)
    flag_rate = _flag_rate(canary, stable, limits, precision)
    flag_check = flag_rate.check
    if flag_rate.awaiting_labels and soak_remaining_seconds <= 0:
        flag_check = flag_check.model_copy(
            update={
                "passed": False,
                "note": "higher than stable, and too few labels by the end of the soak to "
                "show the extra flags are fraud",
            }
        )
    checks = [
        _load_failures(canary, limits),
        _inference_errors(canary, stable, limits),
        _latency(canary, stable, limits),
        flag_check,
        precision,
    ]
    required = min(min_devices, cohort_devices)
    failed = [check for check in checks if check.passed is False]
    verdict: Verdict
    if failed:
        verdict, reason = "fail", "; ".join(_describe(check) for check in failed)
    elif soak_remaining_seconds > 0:
        verdict, reason = "wait", f"soaking: {soak_remaining_seconds:.0f} s left"
        if flag_rate.awaiting_labels:
            reason += f"; flag rate {flag_check.note}"
    elif canary.devices < required:
        verdict = "wait"
        reason = f"{canary.devices} of {required} canary devices report on the new model"
    elif required > 0 and canary.scored < limits.min_scored:
        verdict = "wait"
        reason = f"{canary.scored} of {limits.min_scored} canary transactions scored"
    else:
        judged = sum(check.passed is True for check in checks)
        verdict, reason = "pass", f"{judged} checks passed, none failed"
    return AnalysisRead(
        at=at,
        step=step,
        verdict=verdict,
        reason=reason,
        cohort_devices=cohort_devices,
        reporting_devices=canary.devices,
        required_devices=required,
        soak_remaining_seconds=max(soak_remaining_seconds, 0.0),
        canary_scored=canary.scored,
        stable_scored=stable.scored if stable else 0,
        checks=checks,
    )

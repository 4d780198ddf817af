from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from server.common.schemas import ReadModel, RequestModel
from server.devices.schemas import Labels
from server.rollouts.orm import RolloutState


class DesiredModelUpdate(RequestModel):
    model_id: uuid.UUID | None = None


class TargetKind(StrEnum):
    ALL = "all"
    CLUSTERS = "clusters"
    SELECTOR = "selector"


class RolloutTarget(RequestModel):
    """Which devices a rollout is for: all of them, those of some clusters, or those whose
    labels include every pair of ``labels``."""

    kind: TargetKind = TargetKind.ALL
    cluster_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    labels: Labels = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind is TargetKind.CLUSTERS and not self.cluster_ids:
            raise ValueError("a clusters target names at least one cluster")
        if self.kind is TargetKind.SELECTOR and not self.labels:
            raise ValueError("a selector target names at least one label")
        if self.kind is not TargetKind.CLUSTERS and self.cluster_ids:
            raise ValueError("cluster_ids belong to a clusters target")
        if self.kind is not TargetKind.SELECTOR and self.labels:
            raise ValueError("labels belong to a selector target")
        return self

    @property
    def key(self) -> str:
        """The same for two targets that name the same devices the same way."""
        if self.kind is TargetKind.CLUSTERS:
            return "clusters:" + ",".join(sorted(str(c) for c in set(self.cluster_ids)))
        if self.kind is TargetKind.SELECTOR:
            return "selector:" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return "all"


class RolloutStep(RequestModel):
    percent: float = Field(gt=0, le=100, description="Share of the target on the new model.")
    soak_seconds: int = Field(
        default=300, ge=0, le=7 * 86_400, description="Least time on this step before it passes."
    )
    min_devices: int = Field(
        default=1,
        ge=0,
        description="Least canary devices that must report on the new model before the "
        "step can pass (capped at the step's cohort size).",
    )


DEFAULT_STEPS = (5.0, 25.0, 50.0, 100.0)


def default_steps() -> list[RolloutStep]:
    return [RolloutStep(percent=percent) for percent in DEFAULT_STEPS]


class AnalysisThresholds(RequestModel):
    """When the canary cohort counts as worse than the stable one."""

    max_load_failures: int = Field(
        default=0, ge=0, description="Model load failures tolerated on canary devices."
    )
    max_inference_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Canary inference errors per scored transaction."
    )
    max_latency_p95_ratio: float = Field(
        default=2.0, ge=1, description="Canary p95 inference latency over stable's."
    )
    latency_slack_ms: float = Field(
        default=1.0, ge=0, description="Added to the stable latency before the ratio is applied."
    )
    max_flag_rate_ratio: float = Field(
        default=3.0,
        ge=1,
        description="How many times higher (or lower) the canary flag rate may be than "
        "stable's, beyond chance (95% intervals of both). Higher is accepted while canary "
        "precision on labelled anomalies holds.",
    )
    flag_rate_slack: float = Field(
        default=0.005, ge=0, le=1, description="Absolute flag-rate difference always tolerated."
    )
    max_flag_rate: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Flag rate that fails a canary at once; the only flag-rate limit when "
        "there is no stable model to compare.",
    )
    max_precision_drop: float = Field(
        default=0.1, ge=0, le=1, description="Precision on labelled anomalies, canary below stable."
    )
    min_labelled: int = Field(
        default=20, ge=1, description="Labelled events each side needs before precision counts."
    )
    min_scored: int = Field(
        default=200, ge=1, description="Canary transactions scored before rates are judged."
    )


class RolloutCreate(RequestModel):
    model_id: uuid.UUID
    target: RolloutTarget = Field(default_factory=RolloutTarget)
    steps: list[RolloutStep] = Field(default_factory=default_steps, min_length=1, max_length=20)
    thresholds: AnalysisThresholds = Field(default_factory=AnalysisThresholds)

    @model_validator(mode="after")
    def _steps_grow_to_all(self) -> Self:
        percents = [step.percent for step in self.steps]
        if any(later <= earlier for earlier, later in itertools.pairwise(percents)):
            raise ValueError("step percentages must increase")
        if percents[-1] != 100:
            raise ValueError("the last step must be 100%")
        return self


class RolloutDefaults(ReadModel):
    steps: list[RolloutStep]
    thresholds: AnalysisThresholds


Verdict = Literal["pass", "fail", "wait"]


class MetricCheck(ReadModel):
    """One analysis metric, canary against stable; ``passed`` is None without enough data."""

    metric: str
    unit: str
    canary: float | None
    stable: float | None
    limit: float | None = Field(description="The canary value beyond which the check fails.")
    passed: bool | None
    note: str = ""


class AnalysisRead(ReadModel):
    at: datetime
    step: int
    verdict: Verdict
    reason: str
    cohort_devices: int
    reporting_devices: int = Field(description="Canary devices reporting on the new model.")
    required_devices: int
    soak_remaining_seconds: float
    canary_scored: int
    stable_scored: int
    checks: list[MetricCheck]


class RolloutRead(ReadModel):
    id: uuid.UUID
    model_id: uuid.UUID
    model_label: str
    baseline_model_id: uuid.UUID | None
    baseline_label: str | None
    target: RolloutTarget
    steps: list[RolloutStep]
    thresholds: AnalysisThresholds
    state: RolloutState
    current_step: int = Field(description="Index into steps of the step in progress.")
    step_started_at: datetime
    target_size: int
    cohort_size: int = Field(description="Devices assigned the new model by this rollout.")
    decision: str | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    last_analysis: AnalysisRead | None


class RolloutList(ReadModel):
    items: list[RolloutRead]
    next_cursor: str | None


class RolloutEventRead(ReadModel):
    id: int
    at: datetime
    kind: str
    actor: str
    message: str
    details: dict[str, Any]


class RolloutTimeline(ReadModel):
    items: list[RolloutEventRead]


class RolloutAnalyses(ReadModel):
    """Every analysis of a rollout, oldest first: the canary-versus-stable charts."""

    items: list[AnalysisRead]

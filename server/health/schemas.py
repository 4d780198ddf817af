from __future__ import annotations

from server.common.schemas import ReadModel


class Liveness(ReadModel):
    status: str


class CheckRead(ReadModel):
    name: str
    ok: bool
    detail: str
    duration_ms: float


class Readiness(ReadModel):
    status: str
    checks: list[CheckRead]

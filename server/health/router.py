from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool

from server.health import service as health_service
from server.health.schemas import CheckRead, Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="health-liveness", response_model=Liveness)
async def liveness() -> Liveness:
    """The process is up. Does not look at dependencies (that is /readyz)."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    operation_id="health-readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is unreachable."}},
)
async def readiness(response: Response) -> Readiness:
    """Database, Celery broker, MQTT broker and object store are all reachable."""
    results = await run_in_threadpool(health_service.run_checks)
    ready = all(result.ok for result in results)
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if ready else "unavailable",
        checks=[CheckRead.model_validate(result) for result in results],
    )

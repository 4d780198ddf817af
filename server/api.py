"""The router registry: one include per domain.

Authentication is on by default: every domain router is mounted behind
``RequireRole(Role.VIEWER)``, so it needs a user or integration token, and viewers
may only read. The exceptions are deliberate and listed here: health and sign-in
(public), device enrollment (its own one-time token), one's own session (any
valid credential) and the agent routes (device credentials only).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.anomalies import router as anomalies
from server.audit import router as audit
from server.auth import router as auth
from server.auth.deps import RequireRole, authenticate, require_device
from server.clusters import router as clusters
from server.common.actor import Role
from server.devices import router as devices
from server.health import router as health
from server.ingest import router as ingest
from server.registry import router as registry
from server.rollouts import router as rollouts
from server.training import router as training

API_PREFIX = "/api/v1"

metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", operation_id="health-metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics of this process (scrape with an API token)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def build_router() -> APIRouter:
    root = APIRouter()
    root.include_router(health.router)
    root.include_router(metrics_router, dependencies=[Depends(RequireRole(Role.VIEWER))])

    public = APIRouter(prefix=API_PREFIX)
    public.include_router(auth.public_router)
    public.include_router(devices.enrollment_router)
    root.include_router(public)

    any_credential = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate)])
    any_credential.include_router(auth.session_router)
    root.include_router(any_credential)

    authenticated = APIRouter(prefix=API_PREFIX, dependencies=[Depends(RequireRole(Role.VIEWER))])
    for domain_router in (auth.router, devices.router, clusters.router, audit.router):
        authenticated.include_router(domain_router)
    authenticated.include_router(anomalies.router)
    authenticated.include_router(ingest.router)
    authenticated.include_router(registry.router)
    authenticated.include_router(rollouts.router)
    authenticated.include_router(training.router)
    root.include_router(authenticated)

    agent = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_device)])
    agent.include_router(devices.agent_router)
    agent.include_router(registry.agent_router)
    agent.include_router(rollouts.agent_router)
    root.include_router(agent)
    return root

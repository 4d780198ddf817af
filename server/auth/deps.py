"""Authentication and authorisation as dependencies.

Routers are mounted with ``RequireRole(Role.VIEWER)`` by default (see server/api.py),
so a route is protected unless it is placed on the public router on purpose, and a
viewer can never call a method that changes anything.
"""

from __future__ import annotations

from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from server.auth import service as auth_service
from server.auth.exceptions import InvalidCredentials
from server.common.actor import Actor, ActorKind, Role
from server.core.db import SessionDep
from server.core.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticate(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(bearer_scheme)]
) -> Actor:
    if not token:
        raise InvalidCredentials("authentication required: send 'Authorization: Bearer <token>'")
    principal = auth_service.resolve_token(session, token)
    return principal.actor(ip=client_ip(request), request_id=correlation_id.get())


AuthenticatedActor = Annotated[Actor, Depends(authenticate)]


class RequireRole:
    """A user or integration token with at least ``role``; viewers may only read."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __call__(self, request: Request, actor: AuthenticatedActor) -> Actor:
        if actor.kind is ActorKind.DEVICE or actor.role is None:
            raise Forbidden("device credentials cannot use this route")
        if not actor.role.allows(self.role):
            raise Forbidden(f"this needs the {self.role.value} role; you are {actor.role.value}")
        if request.method not in SAFE_METHODS and not actor.role.allows(Role.OPERATOR):
            raise Forbidden("viewers cannot change anything")
        return actor


def require_device(actor: AuthenticatedActor) -> Actor:
    if actor.kind is not ActorKind.DEVICE:
        raise Forbidden("this route is for devices, with their own credentials")
    return actor


ViewerActor = Annotated[Actor, Depends(RequireRole(Role.VIEWER))]
OperatorActor = Annotated[Actor, Depends(RequireRole(Role.OPERATOR))]
AdminActor = Annotated[Actor, Depends(RequireRole(Role.ADMIN))]
DeviceActor = Annotated[Actor, Depends(require_device)]

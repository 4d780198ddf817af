from __future__ import annotations

import uuid
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from server.auth import service as auth_service
from server.auth.deps import AdminActor, AuthenticatedActor, OperatorActor, client_ip
from server.auth.exceptions import InvalidCredentials, LoginRateLimited
from server.auth.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenRead,
    LoginResponse,
    PrincipalRead,
    UserCreate,
    UserList,
    UserRead,
    UserUpdate,
)
from server.core.config import get_settings
from server.core.db import SessionDep
from server.core.ratelimit import get_limiter, per_minute

public_router = APIRouter(prefix="/auth", tags=["auth"])
# Any valid credential, device or user: one's own session and identity.
session_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(tags=["auth"])


@public_router.post("/token", operation_id="auth-login", response_model=LoginResponse)
def login(
    request: Request,
    session: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> LoginResponse:
    """OAuth2 password flow: exchange a user name and password for a session token."""
    limit = per_minute(get_settings().security.login_attempts_per_minute)
    ip = client_ip(request) or "unknown"
    keys = (("login-user", form.username.lower()), ("login-ip", ip))
    limiter = get_limiter()
    if not all(limiter.test(limit, *key) for key in keys):
        raise LoginRateLimited("too many failed sign-ins; wait a minute and try again")
    try:
        user = auth_service.authenticate_password(
            session, username=form.username, password=form.password
        )
    except InvalidCredentials:
        for key in keys:
            limiter.hit(limit, *key)
        raise
    issued = auth_service.sign_in(session, user=user, ip=ip, request_id=correlation_id.get())
    assert issued.record.expires_at is not None
    return LoginResponse(
        access_token=issued.token,
        expires_at=issued.record.expires_at,
        username=user.username,
        role=user.role,
    )


@session_router.post("/logout", operation_id="auth-logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(session: SessionDep, actor: AuthenticatedActor) -> None:
    auth_service.sign_out(session, actor=actor)


@session_router.get("/me", operation_id="auth-me", response_model=PrincipalRead)
def me(actor: AuthenticatedActor) -> PrincipalRead:
    return PrincipalRead(kind=actor.kind.value, id=actor.id, name=actor.name, role=actor.role)


@router.get("/users", operation_id="users-list", response_model=UserList)
def list_users(session: SessionDep, _: AdminActor) -> UserList:
    return UserList(items=[UserRead.model_validate(u) for u in auth_service.list_users(session)])


@router.post(
    "/users",
    operation_id="users-create",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
)
def create_user(session: SessionDep, actor: AdminActor, body: UserCreate) -> UserRead:
    return UserRead.model_validate(auth_service.create_user(session, actor=actor, data=body))


@router.get("/users/{user_id}", operation_id="users-get", response_model=UserRead)
def get_user(session: SessionDep, _: AdminActor, user_id: uuid.UUID) -> UserRead:
    return UserRead.model_validate(auth_service.get_user(session, user_id))


@router.patch("/users/{user_id}", operation_id="users-update", response_model=UserRead)
def update_user(
    session: SessionDep, actor: AdminActor, user_id: uuid.UUID, body: UserUpdate
) -> UserRead:
    user = auth_service.update_user(session, actor=actor, user_id=user_id, data=body)
    return UserRead.model_validate(user)


@router.get("/tokens", operation_id="tokens-list", response_model=ApiTokenList)
def list_tokens(session: SessionDep, actor: OperatorActor) -> ApiTokenList:
    tokens = auth_service.list_api_tokens(session, actor=actor)
    return ApiTokenList(items=[ApiTokenRead.model_validate(t) for t in tokens])


@router.post(
    "/tokens",
    operation_id="tokens-create",
    response_model=ApiTokenCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_token(
    session: SessionDep, actor: OperatorActor, body: ApiTokenCreate
) -> ApiTokenCreated:
    issued = auth_service.create_api_token(session, actor=actor, data=body)
    return ApiTokenCreated(
        **ApiTokenRead.model_validate(issued.record).model_dump(), token=issued.token
    )


@router.delete("/tokens/{token_id}", operation_id="tokens-revoke", response_model=ApiTokenRead)
def revoke_token(session: SessionDep, actor: OperatorActor, token_id: uuid.UUID) -> ApiTokenRead:
    return ApiTokenRead.model_validate(
        auth_service.revoke_api_token(session, actor=actor, token_id=token_id)
    )

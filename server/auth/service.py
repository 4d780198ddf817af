"""Users, sign-in and bearer tokens. Services flush; the caller commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.audit import service as audit_service
from server.auth.exceptions import (
    InvalidCredentials,
    RoleTooHigh,
    TokenNotFound,
    UsernameTaken,
    UserNotFound,
)
from server.auth.orm import ApiToken, TokenKind, User
from server.auth.schemas import ApiTokenCreate, UserCreate, UserUpdate
from server.common.actor import Actor, ActorKind, Role
from server.core.config import get_settings
from server.core.db import utcnow
from server.core.security import (
    API_TOKEN_PREFIX,
    DEVICE_TOKEN_PREFIX,
    SESSION_TOKEN_PREFIX,
    dummy_verify_password,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    record: ApiToken


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever a valid bearer token stands for."""

    token: ApiToken
    user: User | None

    def actor(self, *, ip: str | None, request_id: str | None) -> Actor:
        if self.token.kind is TokenKind.DEVICE:
            return Actor(
                kind=ActorKind.DEVICE,
                id=self.token.device_id,
                name=f"device:{self.token.device_id}",
                token_id=self.token.id,
                ip=ip,
                request_id=request_id,
            )
        assert self.user is not None
        kind = ActorKind.USER if self.token.kind is TokenKind.SESSION else ActorKind.API_TOKEN
        name = (
            self.user.username
            if kind is ActorKind.USER
            else f"{self.user.username}/{self.token.name}"
        )
        return Actor(
            kind=kind,
            id=self.user.id if kind is ActorKind.USER else self.token.id,
            name=name,
            role=self.token.role,
            user_id=self.user.id,
            token_id=self.token.id,
            ip=ip,
            request_id=request_id,
        )


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(f"user {user_id} does not exist")
    return user


def get_user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def create_user(session: Session, *, actor: Actor, data: UserCreate) -> User:
    if get_user_by_username(session, data.username) is not None:
        raise UsernameTaken(f"user name {data.username!r} is taken")
    user = User(username=data.username, password_hash=hash_password(data.password), role=data.role)
    session.add(user)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "role": user.role.value},
    )
    return user


def update_user(session: Session, *, actor: Actor, user_id: uuid.UUID, data: UserUpdate) -> User:
    user = get_user(session, user_id)
    changes: dict[str, object] = {}
    if data.role is not None and data.role is not user.role:
        user.role = data.role
        changes["role"] = data.role.value
        _cap_token_roles(session, user)
    if data.is_active is not None and data.is_active != user.is_active:
        user.is_active = data.is_active
        changes["is_active"] = data.is_active
        if not data.is_active:
            _revoke_user_tokens(session, user.id)
    if data.password is not None:
        user.password_hash = hash_password(data.password)
        changes["password"] = "changed"
        _revoke_user_tokens(session, user.id, kinds=(TokenKind.SESSION,))
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="user.update",
        target_type="user",
        target_id=user.id,
        details=changes,
    )
    return user


def _cap_token_roles(session: Session, user: User) -> None:
    """A demoted user's tokens lose what the user lost."""
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
        if token.role is not None and not user.role.allows(token.role):
            token.role = user.role


def _revoke_user_tokens(
    session: Session, user_id: uuid.UUID, *, kinds: tuple[TokenKind, ...] = tuple(TokenKind)
) -> None:
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.kind.in_(kinds), ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def authenticate_password(session: Session, *, username: str, password: str) -> User:
    user = get_user_by_username(session, username)
    if user is None:
        dummy_verify_password()
        raise InvalidCredentials("wrong user name or password")
    if not verify_password(user.password_hash, password) or not user.is_active:
        raise InvalidCredentials("wrong user name or password")
    return user


def sign_in(session: Session, *, user: User, ip: str | None, request_id: str | None) -> IssuedToken:
    """Open a dashboard session for a user whose password was checked."""
    ttl = timedelta(minutes=get_settings().security.session_ttl_minutes)
    issued = _issue(
        session,
        kind=TokenKind.SESSION,
        prefix=SESSION_TOKEN_PREFIX,
        name="sign-in",
        user_id=user.id,
        role=user.role,
        expires_at=utcnow() + ttl,
    )
    user.last_login_at = utcnow()
    actor = Actor(
        kind=ActorKind.USER,
        id=user.id,
        name=user.username,
        role=user.role,
        user_id=user.id,
        ip=ip,
        request_id=request_id,
    )
    audit_service.record(
        session, actor=actor, action="auth.sign_in", target_type="user", target_id=user.id
    )
    return issued


def sign_out(session: Session, *, actor: Actor) -> None:
    if actor.token_id is None:
        return
    token = session.get(ApiToken, actor.token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
        audit_service.record(
            session,
            actor=actor,
            action="auth.sign_out",
            target_type="api_token",
            target_id=token.id,
        )


def create_api_token(session: Session, *, actor: Actor, data: ApiTokenCreate) -> IssuedToken:
    if actor.user_id is None or actor.role is None:
        raise RoleTooHigh("only users and their tokens can create API tokens")
    if not actor.role.allows(data.role):
        raise RoleTooHigh(f"a token cannot have more than your role ({actor.role.value})")
    days = min(data.expires_in_days, get_settings().security.api_token_max_days)
    issued = _issue(
        session,
        kind=TokenKind.API,
        prefix=API_TOKEN_PREFIX,
        name=data.name,
        user_id=actor.user_id,
        role=data.role,
        expires_at=utcnow() + timedelta(days=days),
    )
    audit_service.record(
        session,
        actor=actor,
        action="api_token.create",
        target_type="api_token",
        target_id=issued.record.id,
        details={"name": data.name, "role": data.role.value, "days": days},
    )
    return issued


def list_api_tokens(session: Session, *, actor: Actor) -> list[ApiToken]:
    statement = select(ApiToken).where(ApiToken.kind == TokenKind.API).order_by(ApiToken.created_at)
    if actor.role is not Role.ADMIN:
        statement = statement.where(ApiToken.user_id == actor.user_id)
    return list(session.scalars(statement))


def revoke_api_token(session: Session, *, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    token = session.get(ApiToken, token_id)
    visible = (
        token is not None
        and token.kind is TokenKind.API
        and (actor.role is Role.ADMIN or token.user_id == actor.user_id)
    )
    if token is None or not visible:
        raise TokenNotFound(f"API token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit_service.record(
            session,
            actor=actor,
            action="api_token.revoke",
            target_type="api_token",
            target_id=token.id,
        )
    return token


def issue_device_credential(session: Session, *, device_id: uuid.UUID) -> str:
    """A new credential for a device, replacing any it had. Returned once, never stored."""
    revoke_device_credentials(session, device_id=device_id)
    return _issue(
        session,
        kind=TokenKind.DEVICE,
        prefix=DEVICE_TOKEN_PREFIX,
        name="device",
        device_id=device_id,
        role=None,
        expires_at=None,
    ).token


def revoke_device_credentials(session: Session, *, device_id: uuid.UUID) -> None:
    session.execute(
        update(ApiToken)
        .where(ApiToken.device_id == device_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def resolve_token(session: Session, token: str) -> Principal:
    """The principal a bearer token stands for, or InvalidCredentials with the reason."""
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if record is None:
        raise InvalidCredentials("the token is not valid")
    if record.revoked_at is not None:
        raise InvalidCredentials("the token has been revoked")
    if record.expires_at is not None and record.expires_at <= utcnow():
        raise InvalidCredentials("the token has expired")
    user = None
    if record.user_id is not None:
        user = session.get(User, record.user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("the token's user is deactivated")
    return Principal(token=record, user=user)


def _issue(
    session: Session,
    *,
    kind: TokenKind,
    prefix: str,
    name: str,
    role: Role | None,
    expires_at: datetime | None,
    user_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> IssuedToken:
    token = new_token(prefix)
    record = ApiToken(
        kind=kind,
        name=name,
        token_hash=hash_token(token),
        display_prefix=token[:10],
        user_id=user_id,
        device_id=device_id,
        role=role,
        expires_at=expires_at,
    )
    session.add(record)
    session.flush()
    return IssuedToken(token=token, record=record)

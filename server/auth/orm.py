from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.common.actor import Role
from server.core.db import Base, str_enum, utcnow


def role_column() -> Enum:
    return str_enum(Role, "role")


class TokenKind(StrEnum):
    SESSION = "session"
    API = "api"
    DEVICE = "device"


class RoleRecord(Base):
    """The roles, as rows, so that other tables can reference them; seeded by migration."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int]
    description: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(role_column(), ForeignKey("roles.name"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """Every bearer credential: dashboard sessions, integration tokens and device credentials.

    Only a SHA-256 of the token is stored; the token itself is shown once, when issued.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (device_id IS NULL)", name="owned_by_user_or_device"),
        Index("ix_api_tokens_user_id_kind", "user_id", "kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[TokenKind] = mapped_column(str_enum(TokenKind, "token_kind"))
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role | None] = mapped_column(role_column(), ForeignKey("roles.name"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

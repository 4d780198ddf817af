from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from server.auth.orm import TokenKind
from server.common.actor import Role
from server.common.schemas import ReadModel, RequestModel

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{3,64}$"


class LoginResponse(ReadModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    role: Role


class UserCreate(RequestModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=12, max_length=256)
    role: Role = Role.VIEWER


class UserUpdate(RequestModel):
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=12, max_length=256)


class UserRead(ReadModel):
    id: uuid.UUID
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(ReadModel):
    items: list[UserRead]


class PrincipalRead(ReadModel):
    kind: str
    id: uuid.UUID | None
    name: str
    role: Role | None


class ApiTokenCreate(RequestModel):
    name: str = Field(min_length=1, max_length=128)
    role: Role = Field(description="At most the role of the user who creates it.")
    expires_in_days: int = Field(default=90, ge=1, description="Lifetime; capped by settings.")


class ApiTokenRead(ReadModel):
    id: uuid.UUID
    kind: TokenKind
    name: str
    display_prefix: str
    user_id: uuid.UUID | None
    role: Role | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="The token itself. Shown once; store it now.")


class ApiTokenList(ReadModel):
    items: list[ApiTokenRead]

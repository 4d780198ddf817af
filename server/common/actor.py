"""Who is acting, and from where: what every audited service call needs to know."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_ROLE_RANK = {Role.VIEWER: 10, Role.OPERATOR: 20, Role.ADMIN: 30}


class ActorKind(StrEnum):
    USER = "user"
    API_TOKEN = "api_token"
    DEVICE = "device"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: uuid.UUID | None
    name: str
    role: Role | None = None
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    ip: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=None, name=name, role=Role.ADMIN)

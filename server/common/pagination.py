"""Keyset (cursor) pagination: stable and fast however deep the page."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.core.errors import InvalidInput

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")

MAX_PAGE_SIZE = 500


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int = 50
    cursor: str | None = None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page.")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def _encode(values: Sequence[Any]) -> str:
    plain = [
        {"t": "dt", "v": v.isoformat()}
        if isinstance(v, datetime)
        else {"t": "uuid", "v": str(v)}
        if isinstance(v, uuid.UUID)
        else {"t": "raw", "v": v}
        for v in values
    ]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values: list[Any] = []
        for item in plain:
            kind, value = item["t"], item["v"]
            if kind == "dt":
                values.append(datetime.fromisoformat(value))
            elif kind == "uuid":
                values.append(uuid.UUID(value))
            else:
                values.append(value)
        return values
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("cursor is malformed; pass next_cursor back unchanged") from exc


def paginate(
    session: Session,
    statement: Select[RowT],
    *,
    order_by: Sequence[InstrumentedAttribute[Any]],
    params: PageParams,
    descending: bool = False,
) -> tuple[list[RowT], str | None]:
    """One page of ``statement`` ordered by ``order_by`` (whose last column must be unique)."""
    if params.cursor:
        after = _decode(params.cursor)
        if len(after) != len(order_by):
            raise InvalidInput("cursor does not belong to this listing")
        key = tuple_(*order_by)
        statement = statement.where(key < tuple_(*after) if descending else key > tuple_(*after))
    ordering = [column.desc() if descending else column.asc() for column in order_by]
    rows = list(session.scalars(statement.order_by(*ordering).limit(params.limit + 1)))
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, _encode([getattr(last, column.key) for column in order_by])

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session, sessionmaker

from server.core.db import get_sessionmaker


def stream_sessions() -> sessionmaker[Session]:
    """A live stream outlives its request's session: it opens a short one per poll."""
    return get_sessionmaker()


StreamSessions = Annotated[sessionmaker[Session], Depends(stream_sessions)]

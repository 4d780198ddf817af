from __future__ import annotations

import json
import logging

import pytest
from asgi_correlation_id import correlation_id

from server.core.config import Settings
from server.core.logging import configure_logging


def test_json_log_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(_env_file=None, log={"json": True}))  # type: ignore[call-arg]
    request_id = "0123456789abcdef0123456789abcdef"
    token = correlation_id.set(request_id)
    try:
        logging.getLogger("server.test").warning("device %s went quiet", "pos-1")
    finally:
        correlation_id.reset(token)
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    record = next(line for line in lines if line["name"] == "server.test")
    assert record["message"] == "device pos-1 went quiet"
    assert record["request_id"] == request_id
    assert record["level"] == "WARNING"

"""The local HTTP endpoint: a bare ASGI app, served by uvicorn.

``POST /v1/score`` takes one transaction (JSON) and answers with its score, decision
and model version once the decision is final (its outbox entry, if any, committed).
``GET /healthz`` says the process serves; ``GET /readyz`` that a model is loaded (the
probes of the K3s DaemonSet); ``GET /v1/status`` gives counters for operators.

No framework: three routes do not need one, and each layer costs latency on the
path a POS terminal waits on.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from pydantic import ValidationError

from edge_agent.pipeline import Decision, NoModelError, Scorer, WorkItem
from edge_agent.protocol.transaction import Transaction
from edge_agent.telemetry import LatencyHistogram

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES: Final = 64 * 1024
SCORE_TIMEOUT_SECONDS: Final = 10.0
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


async def _respond(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None if it is larger than MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ScoringApp:
    """ASGI application in front of the scoring loop."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        token: str | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.scorer = scorer
        self._token = f"Bearer {token}".encode() if token else None
        self._status = status or (lambda: {})
        # Request in to response out for /v1/score, since start (the loop thread only).
        self.latency = LatencyHistogram()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/v1/score":
            if method != "POST":
                await _respond(send, 405, {"detail": "use POST"})
                return
            if not self._authorised(scope):
                await _respond(send, 401, {"detail": "missing or wrong bearer token"})
                return
            started = time.perf_counter()
            await self._score(receive, send)
            self.latency.add_one(time.perf_counter() - started)
        elif path == "/healthz" and method == "GET":
            await _respond(send, 200, {"status": "ok"})
        elif path == "/readyz" and method == "GET":
            active = self.scorer.manager.active
            if active is None:
                await _respond(send, 503, {"status": "no model loaded"})
            else:
                await _respond(send, 200, {"status": "ready", "model_version": active.version})
        elif path == "/v1/status" and method == "GET":
            latency = self.latency
            http = {
                "requests": latency.total(),
                "p50_ms": latency.percentile_ms(0.5),
                "p99_ms": latency.percentile_ms(0.99),
            }
            await _respond(send, 200, {**self._status(), "http": http})
        else:
            await _respond(send, 404, {"detail": "not found"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorised(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._token)
        return False

    async def _score(self, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, {"detail": f"the body is over {MAX_BODY_BYTES} bytes"})
            return
        try:
            tx = Transaction.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            await _respond(send, 422, {"detail": json.loads(json.dumps(errors, default=str))})
            return
        if self.scorer.manager.active is None:
            await _respond(send, 503, {"detail": "no model loaded yet"})
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()

        def resolve(decisions: list[Decision] | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, decisions, error)

        try:
            item = WorkItem([tx], resolve)
            if not self.scorer.score_now(item):
                self.scorer.submit(item)
            decision = await asyncio.wait_for(future, SCORE_TIMEOUT_SECONDS)
        except NoModelError as exc:
            await _respond(send, 503, {"detail": str(exc)})
            return
        except TimeoutError:
            await _respond(send, 504, {"detail": "scoring took too long"})
            return
        await _respond(send, 200, decision.as_dict())


def _settle(
    future: asyncio.Future[Decision],
    decisions: list[Decision] | None,
    error: BaseException | None,
) -> None:
    if future.done():
        return
    if error is not None or not decisions:
        future.set_exception(error or NoModelError("not scored"))
    else:
        future.set_result(decisions[0])

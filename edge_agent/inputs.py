"""Stream inputs: JSON lines from stdin or a file, and the store terminals' MQTT topic.

The line reader takes whatever the pipe or file has ready (up to 64 KiB per read), so
a busy stream arrives at the scoring loop in chunks of many transactions and a quiet
one line by line, without waiting for a chunk to fill.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Final

from pydantic import ValidationError

from edge_agent.comms.transport import Received
from edge_agent.pipeline import Decision, Done, Scorer, WorkItem
from edge_agent.protocol.transaction import Transaction

logger = logging.getLogger(__name__)

_READ_SIZE: Final = 65536
_POLL_SECONDS: Final = 0.5
_SUBMIT_TIMEOUT: Final = 5.0
_LOGGED_INVALID: Final = 20


class InvalidInputLog:
    """Counts unreadable transactions and logs the first few (never their content)."""

    def __init__(self, scorer: Scorer, source: str) -> None:
        self._scorer = scorer
        self._source = source
        self.count = 0

    def __call__(self, where: str, exc: ValidationError) -> None:
        self.count += 1
        self._scorer.window.record_invalid(1)
        if self.count <= _LOGGED_INVALID:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            first = errors[0] if errors else {"loc": (), "msg": "invalid"}
            logger.warning(
                "%s %s: not a transaction (%s: %s)",
                self._source,
                where,
                ".".join(str(p) for p in first["loc"]) or "(line)",
                first["msg"],
            )


class LineReader:
    """Reads JSON lines from a file descriptor into the scoring loop until EOF or stop()."""

    def __init__(
        self,
        fd: int,
        scorer: Scorer,
        *,
        name: str,
        done: Done | None = None,
        on_eof: Callable[[], None] | None = None,
    ) -> None:
        self._fd = fd
        self._scorer = scorer
        self._done = done
        self._on_eof = on_eof
        self._stop = threading.Event()
        self._invalid = InvalidInputLog(scorer, name)
        self.lines = 0
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"input-{name}", daemon=True)

    @property
    def invalid(self) -> int:
        return self._invalid.count

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_POLL_SECONDS * 4)

    def _submit(self, transactions: list[Transaction]) -> bool:
        max_batch = self._scorer.max_batch
        for start in range(0, len(transactions), max_batch):
            item = WorkItem(transactions[start : start + max_batch], self._done)
            while not self._scorer.submit_stream(item, timeout=_POLL_SECONDS):
                if self._stop.is_set():
                    return False
        return True

    def _parse(self, lines: list[bytes]) -> list[Transaction]:
        validate = Transaction.model_validate_json
        transactions: list[Transaction] = []
        for line in lines:
            self.lines += 1
            if not line.strip():
                continue
            try:
                transactions.append(validate(line))
            except ValidationError as exc:
                self._invalid(f"line {self.lines}", exc)
        return transactions

    def _run(self) -> None:
        rest = b""
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._fd], [], [], _POLL_SECONDS)
                if not ready:
                    continue
                chunk = os.read(self._fd, _READ_SIZE)
                if not chunk:
                    break
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                if lines and not self._submit(self._parse(lines)):
                    return
            else:
                return
            if rest.strip():
                self._submit(self._parse([rest]))
            logger.info("input ended after %d lines (%d unreadable)", self.lines, self.invalid)
        except OSError as exc:
            logger.error("input failed: %s", exc)
        finally:
            self.finished.set()
            if self._on_eof is not None and not self._stop.is_set():
                self._on_eof()


class TerminalInput:
    """Transactions published by the store's terminals on a local MQTT topic.

    A message is acknowledged (manual PUBACK) only once its transaction is scored and
    its outbox entry committed; the broker redelivers anything unacknowledged after a
    crash, and the event id derived from the transaction makes that harmless.
    """

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._invalid = InvalidInputLog(scorer, "terminal message")

    def on_message(self, message: Received) -> None:
        try:
            tx = Transaction.model_validate_json(message.payload)
        except ValidationError as exc:
            self._invalid(f"on {message.topic}", exc)
            message.ack()  # a malformed message will not improve by redelivery
            return

        def done(_: list[Decision] | None, error: BaseException | None) -> None:
            if error is None:
                message.ack()

        if not self._scorer.submit_stream(WorkItem([tx], done), timeout=_SUBMIT_TIMEOUT):
            logger.warning("scoring queue full; a terminal message waits for redelivery")

"""What the embedded profile runs beside the API: an MQTT broker and a Celery worker.

Each runs as a child process of ``edgeplane serve`` and is stopped with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

logger = logging.getLogger(__name__)


def run_mqtt_broker(host: str, port: int) -> None:
    """Run an in-process MQTT 3.1.1 broker (amqtt) until interrupted.

    amqtt speaks MQTT 3.1.1 only, so agents and ingest fall back to 3.1.1 with it.
    """
    import warnings

    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }

    async def serve() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            broker = Broker(config)
        await broker.start()
        logger.info("embedded MQTT broker listening on %s:%d", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())


def _exit_on_sigterm(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class ChildProcesses:
    """Start ``edgeplane`` subcommands as children; terminate them all on exit."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._previous_sigterm: (
            signal.Handlers | Callable[[int, FrameType | None], object] | int | None
        ) = None

    def start(self, name: str, *args: str, output: Path | None = None) -> None:
        """Run ``edgeplane <args>``; its standard output and error go to ``output`` if given."""
        command = [sys.executable, "-m", "server.cli", *args]
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(output.open("ab")) if output is not None else None
            # A session of its own: Ctrl-C reaches only `serve`, which then stops the
            # children in order, and a child's own subprocesses can be killed with it.
            process = subprocess.Popen(  # noqa: S603
                command,
                env=os.environ.copy(),
                start_new_session=True,
                stdout=sink,
                stderr=subprocess.STDOUT if sink is not None else None,
            )
        logger.info("started %s (pid %d)", name, process.pid)
        self.children.append((name, process))

    def __enter__(self) -> ChildProcesses:
        # uvicorn handles SIGTERM itself, then raises it again once it has shut down; turn
        # that into SystemExit, so that __exit__ still stops the children.
        self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for _, process in self.children:
            if process.poll() is None:
                process.terminate()
        signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
        for name, process in self.children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", name)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

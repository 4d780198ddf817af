"""What the embedded profile runs beside the API: an MQTT broker and a Celery worker.

Each runs as a child process of ``edgeplane serve`` and is stopped with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from types import TracebackType

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


class ChildProcesses:
    """Start ``edgeplane`` subcommands as children; terminate them all on exit."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> None:
        command = [sys.executable, "-m", "server.cli", *args]
        process = subprocess.Popen(command, env=os.environ.copy())  # noqa: S603
        logger.info("started %s (pid %d)", name, process.pid)
        self.children.append((name, process))

    def __enter__(self) -> ChildProcesses:
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
        for name, process in self.children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", name)
                process.kill()

"""The agent daemon: wires models, scoring, outbox, MQTT, inputs and the HTTP endpoint.

Threads: the scoring loop; the outbox sender; paho's network loop (one per broker);
the desired-state follower; the heartbeat; one per stream input; uvicorn's event loop.
The main thread waits for SIGTERM or SIGINT and then shuts down in order: inputs
first, then the scoring loop drains what it was given and closes its telemetry window,
the sender waits a few seconds for confirmations, the device says offline, and the
outbox is checkpointed. Whatever was not confirmed stays in the outbox for next time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edge_agent.comms.outbox import Outbox, open_outbox
from edge_agent.comms.sender import OutboxSender
from edge_agent.comms.transport import MqttOptions, MqttTransport, Received
from edge_agent.config import AgentSettings
from edge_agent.control_plane import ControlPlaneClient, ControlPlaneError, Credentials
from edge_agent.inference import runtime_name
from edge_agent.inputs import LineReader, TerminalInput
from edge_agent.pipeline import EventPolicy, Scorer
from edge_agent.protocol.artifact import load_public_key
from edge_agent.protocol.messages import DesiredState, DeviceStatus
from edge_agent.protocol.topics import Channel, device_topic
from edge_agent.updates import DesiredStateFollower, ModelManager, ModelStore

logger = logging.getLogger(__name__)

_HTTP_START_TIMEOUT = 10.0


def trusted_keys(settings: AgentSettings) -> list[Ed25519PublicKey]:
    keys = [load_public_key(text) for text in settings.trusted_keys]
    keys += [load_public_key(path.read_text()) for path in settings.trusted_key_files]
    return keys


class _Heartbeat:
    """Tells the control plane over REST that the device is alive, and what it runs."""

    def __init__(self, agent: Agent, client: ControlPlaneClient, interval: float) -> None:
        self._agent = agent
        self._client = client
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            active = self._agent.manager.active
            try:
                self._client.heartbeat(
                    model_version=active.version if active else None,
                    health=self._agent.health(),
                )
                if failing:
                    logger.info("heartbeat reaches the control plane again")
                failing = False
            except ControlPlaneError as exc:
                if not failing:
                    logger.warning("heartbeat failed (%s); scoring goes on", exc)
                failing = True
            self._stop.wait(self._interval)


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        credentials: Credentials,
        *,
        http_client: httpx.Client | None = None,
        manage_gc: bool = False,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.device_id = credentials.device_id
        self.started_at = datetime.now(UTC)
        self._stop = threading.Event()
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

        keys = trusted_keys(settings)
        if not keys:
            logger.warning("no trusted control-plane keys configured: every model is refused")
        self.manager = ModelManager(
            ModelStore(state_dir / "models"),
            public_keys=keys,
            max_batch=settings.scoring.max_batch,
        )
        self.outbox: Outbox = open_outbox(
            state_dir,
            max_bytes=settings.outbox.max_bytes,
            synchronous=settings.outbox.synchronous,
        )
        self.scorer = Scorer(
            self.manager,
            outbox=self.outbox,
            policy=EventPolicy(self.device_id, settings.scoring.sample_rate),
            max_batch=settings.scoring.max_batch,
            max_queued=settings.scoring.max_queued_transactions,
            max_cards=settings.scoring.max_cards,
            max_terminals=settings.scoring.max_terminals,
            telemetry_interval=settings.telemetry_interval_seconds,
            manage_gc=manage_gc,
        )
        self.client = ControlPlaneClient(credentials, client=http_client)
        self.follower = DesiredStateFollower(
            self.manager,
            device_id=self.device_id,
            client=self.client,
            poll_seconds=settings.desired_poll_seconds,
            download_max_bytes=settings.download_max_bytes,
        )
        self.heartbeat = _Heartbeat(self, self.client, credentials.heartbeat_interval_seconds)
        self.transport: MqttTransport | None = None
        self.sender: OutboxSender | None = None
        if settings.mqtt.enabled:
            self.transport = MqttTransport(self._mqtt_options())
            self.sender = OutboxSender(
                self.outbox,
                self.transport,
                device_id=self.device_id,
                resend_after=settings.outbox.resend_after_seconds,
                max_in_flight_messages=settings.outbox.max_in_flight_messages,
                max_unconfirmed_events=settings.outbox.max_unconfirmed_events,
                max_events_per_message=settings.outbox.max_events_per_message,
                max_message_bytes=settings.outbox.max_message_bytes,
            )
            self.transport.subscribe(
                device_topic(self.device_id, Channel.DESIRED), self._on_desired
            )
        self.terminals: MqttTransport | None = None
        if settings.terminals.enabled:
            self.terminals = MqttTransport(self._terminal_options())
            self.terminals.subscribe(
                settings.terminals.topic, TerminalInput(self.scorer).on_message
            )
        self.reader: LineReader | None = None
        self._http_server: Any = None
        self._http_thread: threading.Thread | None = None

    # --- set-up -------------------------------------------------------------------------

    def _status_payload(self, online: bool) -> bytes:
        status = DeviceStatus(device_id=self.device_id, online=online, at=datetime.now(UTC))
        return status.model_dump_json().encode()

    def _mqtt_options(self) -> MqttOptions:
        mqtt = self.settings.mqtt
        creds = self.credentials
        return MqttOptions(
            host=mqtt.host or creds.mqtt_host,
            port=mqtt.port or creds.mqtt_port,
            tls=creds.mqtt_tls if mqtt.tls is None else mqtt.tls,
            client_id=mqtt.client_id or f"edgeplane-agent-{self.device_id}",
            version=mqtt.version,
            username=creds.mqtt_username,
            password=creds.credential.get_secret_value(),
            keepalive=mqtt.keepalive_seconds,
            will_topic=device_topic(self.device_id, Channel.STATUS),
            will_payload=self._status_payload(False),
            online_topic=device_topic(self.device_id, Channel.STATUS),
            online_payload=lambda: self._status_payload(True),
            max_inflight=min(self.settings.outbox.max_in_flight_messages, 65535),
        )

    def _terminal_options(self) -> MqttOptions:
        terminals = self.settings.terminals
        return MqttOptions(
            host=terminals.host,
            port=terminals.port,
            client_id=terminals.client_id or f"edgeplane-terminals-{self.device_id}",
            version=terminals.version,
            username=terminals.username,
            password=terminals.password.get_secret_value() if terminals.password else None,
            clean=False,
            manual_ack=True,
            session_expiry_seconds=86400,
        )

    def _on_desired(self, message: Received) -> None:
        if not message.payload:
            return  # a cleared retained message
        try:
            state = DesiredState.model_validate_json(message.payload)
        except ValidationError as exc:
            logger.warning("ignoring a malformed desired state: %s", exc.errors()[:1])
            return
        self.follower.offer(state)

    # --- status -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Small enough for every heartbeat."""
        stats = self.outbox.stats()
        return {
            "runtime": runtime_name(),
            "outbox_depth": stats.depth,
            "dropped_samples": stats.dropped_samples,
            "dropped_anomalies": stats.dropped_anomalies,
            "mqtt_connected": bool(self.transport and self.transport.connected),
            "last_update": self.manager.last_update,
        }

    def status(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        active = self.manager.active
        window = self.scorer.window
        return {
            "device_id": self.device_id,
            "started_at": self.started_at.isoformat(),
            "model_version": active.version if active else None,
            "previous_model_version": (
                self.manager.previous.version if self.manager.previous else None
            ),
            "threshold": active.threshold if active else None,
            "desired_generation": self.manager.generation,
            "last_update": self.manager.last_update,
            "runtime": runtime_name(),
            "scored": window.total_scored,
            "flagged": window.total_flagged,
            "invalid_inputs": window.total_invalid,
            "queued": self.scorer.queued(),
            "input_finished": bool(self.reader and self.reader.finished.is_set()),
            "outbox": {
                "depth": stats.depth,
                "bytes": stats.bytes,
                "in_flight": stats.in_flight,
                "confirmed": stats.confirmed,
                "dropped_samples": stats.dropped_samples,
                "dropped_anomalies": stats.dropped_anomalies,
                "dropped_telemetry": stats.dropped_telemetry,
            },
            "mqtt": {
                "connected": bool(self.transport and self.transport.connected),
                "refused": self.transport.refused_reason if self.transport else None,
                "unacknowledged": self.transport.unacknowledged() if self.transport else 0,
                "published_messages": self.sender.published_messages if self.sender else 0,
            },
        }

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.manager.start(self.settings.bootstrap_model)
        active = self.manager.active
        logger.info(
            "agent %s starting with model %s (%s)",
            self.device_id,
            active.version if active else "none",
            runtime_name(),
        )
        self.scorer.start()
        if self.transport is not None and self.sender is not None:
            self.transport.start()
            self.sender.start()
        self.follower.start()
        self.heartbeat.start()
        if self.settings.http.enabled:
            self._start_http()
        if self.terminals is not None:
            self.terminals.start()
        if self.settings.input is not None:
            self._start_reader(self.settings.input)

    def _start_reader(self, source: str) -> None:
        fd = sys.stdin.fileno() if source == "-" else os.open(Path(source), os.O_RDONLY)
        self.reader = LineReader(fd, self.scorer, name="stdin" if source == "-" else source)
        self.reader.start()

    def _start_http(self) -> None:
        import uvicorn

        from edge_agent.http import ScoringApp

        http = self.settings.http
        app = ScoringApp(
            self.scorer,
            token=http.token.get_secret_value() if http.token else None,
            status=self.status,
        )
        config = uvicorn.Config(
            app,
            host=http.host,
            port=http.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="http", daemon=True)
        thread.start()
        deadline = time.monotonic() + _HTTP_START_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError(f"the HTTP endpoint did not start on {http.host}:{http.port}")
        self._http_server, self._http_thread = server, thread
        logger.info("scoring endpoint on http://%s:%d/v1/score", http.host, http.port)

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    def shutdown(self) -> None:
        """Stop inputs, drain scoring, flush the outbox for a while, say offline."""
        logger.info("agent stopping")
        if self._http_server is not None and self._http_thread is not None:
            self._http_server.should_exit = True
            self._http_thread.join(timeout=10)
        if self.terminals is not None:
            self.terminals.stop()
        if self.reader is not None:
            self.reader.stop()
        self.scorer.stop()
        if self.sender is not None and self.transport is not None:
            if self.transport.connected and self.settings.shutdown_flush_seconds > 0:
                empty = self.sender.flush(self.settings.shutdown_flush_seconds)
                if not empty:
                    logger.info(
                        "%d outbox entries wait for the next start", self.outbox.stats().depth
                    )
            self.sender.stop()
        self.follower.stop()
        self.heartbeat.stop()
        if self.transport is not None:
            self.transport.stop()
        self.client.close()
        self.outbox.close()
        logger.info("agent stopped")


def run(settings: AgentSettings, credentials: Credentials) -> None:
    """``edgeplane agent run``: until SIGTERM or SIGINT."""
    agent = Agent(settings, credentials, manage_gc=True)

    def handle(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        agent.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    try:
        agent.start()
        agent.wait()
    finally:
        agent.shutdown()

"""Test helpers for the agent: a private Mosquitto, an in-test confirmer, agent processes.

The confirmer does what the control plane's ingest does with what agents send: it
validates each message, stores each (device, event id) once, and publishes a
Confirmation naming the stored ids on the device's ``confirmations`` topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr

from edge_agent.control_plane import Credentials
from edge_agent.features import N_FEATURES, FeatureExtractor
from edge_agent.inference import TFLiteModel
from edge_agent.pipeline import event_id_for
from edge_agent.protocol.artifact import ModelManifest
from edge_agent.protocol.messages import Confirmation, EventBatch, Telemetry
from edge_agent.protocol.topics import Channel, device_topic, parse_device_topic
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import Simulator, SimulatorConfig
from tests.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS = FIXTURES / "models"
PUBLIC_KEY_FILE = FIXTURES / "signing_key.pub.pem"
TRAFFIC = SimulatorConfig(seed=5, n_cards=800, n_stores=40, fraud_rate=0.05)


def signing_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        (FIXTURES / "signing_key.pem").read_bytes(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


def traffic(n: int, config: SimulatorConfig = TRAFFIC) -> list[Transaction]:
    return Simulator(config).generate(n)


def jsonl(transactions: Iterable[Transaction]) -> bytes:
    return b"".join(tx.model_dump_json().encode() + b"\n" for tx in transactions)


def manifest_of(name: str) -> ModelManifest:
    return ModelManifest.model_validate_json((MODELS / name / "manifest.json").read_bytes())


def expected_anomalies(device_id: str, transactions: list[Transaction], model: str) -> set[str]:
    """Event ids of the anomalies an agent must produce for this stream from a fresh start."""
    manifest = manifest_of(model)
    tflite = TFLiteModel(
        (MODELS / model / "model.tflite").read_bytes(), n_features=N_FEATURES, max_batch=256
    )
    scores = tflite.predict(FeatureExtractor().transform_many(transactions))
    return {
        str(event_id_for(device_id, tx))
        for tx, score in zip(transactions, scores, strict=True)
        if score >= manifest.threshold
    }


class Confirmer:
    """Stores and confirms what agents upload, as the control plane's ingest does."""

    def __init__(self, port: int, *, version: str = "5") -> None:
        self.stored: dict[str, Channel] = {}
        self.received: Counter[str] = Counter()
        self.telemetry: list[Telemetry] = []
        self.invalid: list[str] = []
        self.confirming = threading.Event()
        self.confirming.set()
        self._lock = threading.Lock()
        v5 = version == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"confirmer-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)

    def __enter__(self) -> Confirmer:
        self.client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(
            [
                (f"edgeplane/v1/devices/+/{c.value}", 1)
                for c in (Channel.ANOMALIES, Channel.SAMPLES, Channel.TELEMETRY)
            ]
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        where = parse_device_topic(message.topic)
        assert where is not None
        device_id, channel = where
        try:
            if channel is Channel.TELEMETRY:
                telemetry = Telemetry.model_validate_json(message.payload)
                ids = [str(telemetry.event_id)]
                assert telemetry.device_id == device_id
            else:
                batch = EventBatch.model_validate_json(message.payload)
                assert batch.device_id == device_id
                ids = [str(event.event_id) for event in batch.events]
                for event in batch.events:
                    assert len(event.features) == N_FEATURES
                    assert event.flagged is (channel is Channel.ANOMALIES)
        except (ValueError, AssertionError) as exc:
            self.invalid.append(f"{message.topic}: {exc}")
            return
        with self._lock:
            for event_id in ids:
                self.received[event_id] += 1
                self.stored.setdefault(event_id, channel)
            if channel is Channel.TELEMETRY:
                self.telemetry.append(telemetry)
        if not self.confirming.is_set():
            return
        confirmation = Confirmation(
            device_id=device_id, event_ids=[uuid.UUID(i) for i in ids], stored_at=datetime.now(UTC)
        )
        client.publish(
            device_topic(device_id, Channel.CONFIRMATIONS), confirmation.model_dump_json(), qos=1
        )

    def ids(self, channel: Channel) -> set[str]:
        with self._lock:
            return {event_id for event_id, c in self.stored.items() if c is channel}


def write_credentials(state_dir: Path, *, mqtt_port: int, control_plane_url: str) -> Credentials:
    """Credentials as enrollment would leave them (enrollment itself is tested on its own)."""
    device_id = str(uuid.uuid4())
    credentials = Credentials(
        device_id=device_id,
        credential=SecretStr("device-credential-" + uuid.uuid4().hex),
        control_plane_url=control_plane_url,
        mqtt_host="127.0.0.1",
        mqtt_port=mqtt_port,
        mqtt_tls=False,
        mqtt_username=device_id,
        heartbeat_interval_seconds=3600,
        enrolled_at=datetime.now(UTC),
    )
    credentials.save(state_dir)
    return credentials


def agent_config(
    path: Path,
    *,
    state_dir: Path,
    http_port: int,
    bootstrap: str | None = "mlp-1",
    extra: str = "",
) -> Path:
    lines = [
        f'state_dir = "{state_dir}"',
        f'trusted_key_files = ["{PUBLIC_KEY_FILE}"]',
        "telemetry_interval_seconds = 1.0",
        "desired_poll_seconds = 3600",
        "shutdown_flush_seconds = 3",
        'log_level = "INFO"',
    ]
    if bootstrap is not None:
        lines.append(f'bootstrap_model = "{MODELS / bootstrap}"')
    lines += [
        "[http]",
        f"port = {http_port}",
        "[outbox]",
        "resend_after_seconds = 2.0",
        "[scoring]",
        "sample_rate = 0.02",
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@dataclass
class AgentProcess:
    """``python -m edge_agent run`` as a child process (the agent never needs the server)."""

    config: Path
    log_path: Path
    http_port: int
    input_file: Path | None = None
    stdin: bool = False
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "edge_agent", "run", "--config", str(self.config)]
        if self.input_file is not None:
            command += ["--input", str(self.input_file)]
        elif self.stdin:
            command += ["--input", "-"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: self.status() is not None or self.process is None or self.exited(),
            timeout=60,
            what="the agent's HTTP endpoint",
        )
        assert not self.exited(), self.log()

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def feed(self, data: bytes) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def status(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.http_port}/v1/status", timeout=5)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def score(self, tx: Transaction) -> tuple[int, dict[str, Any]]:
        response = httpx.post(
            f"http://127.0.0.1:{self.http_port}/v1/score",
            content=tx.model_dump_json(),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        body: dict[str, Any] = response.json()
        return response.status_code, body

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ControlPlaneStandIn:
    """Serves ``GET /api/v1/agent/desired`` and artifact files, as the registry will.

    Every request must carry the device's credential as its bearer token.
    """

    def __init__(self, credential: str) -> None:
        self.credential = credential
        self.files: dict[str, bytes] = {}
        self.desired: bytes | None = None
        self.requests: list[tuple[str, bool]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                authorised = self.headers.get("Authorization") == f"Bearer {stand_in.credential}"
                stand_in.requests.append((self.path, authorised))
                if not authorised:
                    self._reply(401, b'{"detail":"not authenticated"}')
                elif self.path == "/api/v1/agent/desired":
                    if stand_in.desired is None:
                        self._reply(404, b'{"detail":"no desired state"}')
                    else:
                        self._reply(200, stand_in.desired)
                elif self.path in stand_in.files:
                    self._reply(200, stand_in.files[self.path])
                else:
                    self._reply(404, b'{"detail":"not found"}')

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ControlPlaneStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def publish(self, name: str, *, model_bytes: bytes, manifest_bytes: bytes) -> tuple[str, str]:
        """Serve an artifact; returns (model URL, manifest URL) as a desired state names them."""
        model_path = f"/artifacts/{name}/model.tflite"
        manifest_path = f"/artifacts/{name}/manifest.json"
        self.files[model_path] = model_bytes
        self.files[manifest_path] = manifest_bytes
        return model_path, manifest_path

    def downloads(self, name: str) -> int:
        return sum(1 for path, _ in self.requests if path.startswith(f"/artifacts/{name}/"))

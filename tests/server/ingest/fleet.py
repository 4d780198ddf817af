"""Test helpers: a private Mosquitto, ingest processes, and a fleet of publishing devices.

The fleet behaves like the agent's outbox: it keeps every event until ingest confirms it,
and (when asked to) sends unconfirmed events again after a while.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from edge_agent.protocol.messages import Confirmation, EventBatch, ScoredEvent
from edge_agent.protocol.topics import Channel, device_topic
from edge_agent.protocol.transaction import Transaction
from tests.processes import free_port, wait_for


@dataclass
class IngestProcess:
    """``edgeplane ingest`` as a child process, configured through its environment."""

    port: int
    client_id: str
    mqtt_version: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = os.environ.copy() | {
            "EDGEPLANE_MQTT__HOST": "127.0.0.1",
            "EDGEPLANE_MQTT__PORT": str(self.port),
            "EDGEPLANE_INGEST__MQTT_VERSION": self.mqtt_version,
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "ingest",
                    "--client-id",
                    self.client_id,
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """A counter or gauge from this process's /metrics (0 while it is not serving them)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? ([0-9.e+-]+)$", re.M)
        match = pattern.search(text)
        return float(match.group(2)) if match else 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_event(rng: random.Random, *, flagged: bool = True) -> ScoredEvent:
    score = rng.uniform(0.8, 1.0) if flagged else rng.uniform(0.0, 0.3)
    return ScoredEvent(
        event_id=uuid.uuid4(),
        transaction=Transaction(
            transaction_id=f"tx-{uuid.uuid4().hex[:16]}",
            store_id=f"store-{rng.randint(1, 50)}",
            terminal_id=f"term-{rng.randint(1, 500)}",
            card_token=f"card-{rng.randint(1, 10_000)}",
            amount=round(rng.uniform(1, 900), 2),
            currency="EUR",
            merchant_category="5411",
            timestamp=datetime.now(UTC),
            latitude=rng.uniform(40, 55),
            longitude=rng.uniform(-5, 20),
        ),
        features=[rng.random() for _ in range(N_FEATURES)],
        feature_spec_version=FEATURE_SPEC_VERSION,
        score=score,
        threshold=0.8,
        flagged=flagged,
        model_version="m-1",
        scored_at=datetime.now(UTC),
    )


def batch_payload(device_id: str, events: Iterable[ScoredEvent]) -> bytes:
    batch = EventBatch(device_id=device_id, sent_at=datetime.now(UTC), events=list(events))
    return batch.model_dump_json().encode()


class Fleet:
    """Devices that publish events and keep them until confirmed, like the agent's outbox.

    One MQTT client speaks for every device (the test brokers allow anonymous clients).
    """

    def __init__(self, port: int, device_ids: list[str], *, mqtt5: bool, seed: int = 1) -> None:
        self.device_ids = device_ids
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, uuid.UUID], tuple[float, ScoredEvent]] = {}
        self.published: set[tuple[str, uuid.UUID]] = set()
        self.confirmations = 0
        self.confirmed_again = 0
        self.confirmed: set[tuple[str, uuid.UUID]] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-fleet-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_for(self.connected.is_set, timeout=20, what="the fleet to connect")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(f"edgeplane/v1/devices/+/{Channel.CONFIRMATIONS.value}", qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        confirmation = Confirmation.model_validate_json(message.payload)
        with self.lock:
            self.confirmations += 1
            for event_id in confirmation.event_ids:
                key = (confirmation.device_id, event_id)
                if key in self.confirmed:
                    self.confirmed_again += 1
                self.confirmed.add(key)
                self.pending.pop(key, None)

    def publish(self, device_id: str, events: list[ScoredEvent], *, channel: Channel) -> None:
        now = time.monotonic()
        with self.lock:
            for event in events:
                key = (device_id, event.event_id)
                self.published.add(key)
                if key not in self.confirmed:
                    self.pending[key] = (now, event)
        self.client.publish(
            device_topic(device_id, channel), batch_payload(device_id, events), qos=1
        )

    def publish_round(
        self, events_per_message: int, *, channel: Channel = Channel.ANOMALIES
    ) -> None:
        for device_id in self.device_ids:
            events = [make_event(self.rng) for _ in range(events_per_message)]
            self.publish(device_id, events, channel=channel)

    def resend_unconfirmed(self, older_than: float) -> int:
        cutoff = time.monotonic() - older_than
        by_device: dict[str, list[ScoredEvent]] = {}
        with self.lock:
            for (device_id, _), (sent, event) in self.pending.items():
                if sent < cutoff:
                    by_device.setdefault(device_id, []).append(event)
        for device_id, events in by_device.items():
            for start in range(0, len(events), 100):
                self.publish(device_id, events[start : start + 100], channel=Channel.ANOMALIES)
        return sum(len(e) for e in by_device.values())

    def unconfirmed(self) -> int:
        with self.lock:
            return len(self.pending)

    def wait_all_confirmed(self, *, timeout: float, resend_after: float | None) -> None:
        deadline = time.monotonic() + timeout
        while self.unconfirmed() and time.monotonic() < deadline:
            if resend_after is not None:
                self.resend_unconfirmed(resend_after)
            time.sleep(0.5)
        assert self.unconfirmed() == 0, f"{self.unconfirmed()} events never confirmed"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

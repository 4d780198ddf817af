"""Ingest throughput and latency: publishers -> Mosquitto -> ``edgeplane ingest`` -> PostgreSQL.

Run with ``.venv/bin/python bench/ingest.py`` (PostgreSQL on 127.0.0.1:5432 and the
mosquitto binary needed; the bench starts its own broker on a free port and creates, then
drops, its own database). Phases, all in one run on the same machine:

1. baseline: a plain paho subscriber that only counts QoS 1 messages from the publishers;
2. ingest, one event per message: events/s stored (and confirmed) in PostgreSQL;
3. ingest, batched messages (``--batch`` events per message);
4. and 5. the same two at half the measured rate, for publish-to-commit latency without
   a standing queue (under saturation latency only measures the queue).

Rates are events (or messages) from the first publish to the last confirmation, so they
include everything a device waits for. Latency is from publish to the confirmation that
ingest sends after its commit. The figure that compares across machines is the ratio to
the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.fernet import Fernet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES  # noqa: E402

TOPIC = "edgeplane/v1/devices/{}/anomalies"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _event_json(event_id: str, transaction_id: str, now: str) -> str:
    features = ",".join(f"{(i * 0.037) % 1:.4f}" for i in range(N_FEATURES))
    return (
        f'{{"event_id":"{event_id}","transaction":{{"transaction_id":"{transaction_id}",'
        f'"store_id":"store-7","terminal_id":"term-3","card_token":"card-{transaction_id[-6:]}",'
        f'"amount":42.5,"currency":"EUR","merchant_category":"5411","timestamp":"{now}",'
        f'"latitude":48.1,"longitude":11.6}},"features":[{features}],'
        f'"feature_spec_version":{FEATURE_SPEC_VERSION},"score":0.93,"threshold":0.8,'
        f'"flagged":true,"model_version":"bench-1","scored_at":"{now}"}}'
    )


def publisher(
    port: int,
    devices: list[str],
    messages: int,
    per_message: int,
    rate: float | None,
    start: Any,
    results: Any,
) -> None:
    """Publish ``messages`` messages of ``per_message`` events over ``devices``, QoS 1."""
    now = datetime.now(UTC).isoformat()
    prepared: list[tuple[str, list[str], bytes]] = []
    for index in range(messages):
        device = devices[index % len(devices)]
        ids = [str(uuid.uuid4()) for _ in range(per_message)]
        events = ",".join(_event_json(i, f"tx-{i[:18]}", now) for i in ids)
        payload = (
            f'{{"schema_version":1,"device_id":"{device}","sent_at":"{now}","events":[{events}]}}'
        )
        prepared.append((TOPIC.format(device), ids, payload.encode()))
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(200)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    start.wait()
    sent: list[tuple[list[str], float]] = []
    began = time.time()
    interval = 1.0 / rate if rate else 0.0
    for index, (topic, ids, payload) in enumerate(prepared):
        if interval:
            delay = began + index * interval - time.time()
            if delay > 0:
                time.sleep(delay)
        stamp = time.time()
        info = client.publish(topic, payload, qos=1)
        sent.append((ids, stamp))
        if index % 200 == 199:
            info.wait_for_publish(timeout=60)
    client.loop_stop()
    client.disconnect()
    results.put(sent)


def counting_subscriber(port: int, expected: int, ready: Any, results: Any) -> None:
    """The baseline: a plain paho subscriber that counts QoS 1 messages and nothing more."""
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_connect(client: mqtt.Client, *args: Any) -> None:
        client.subscribe(TOPIC.format("+"), qos=1)

    def on_subscribe(*args: Any) -> None:
        ready.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        last = time.time()
        if received == 0:
            first = last
        received += 1
        if received >= expected:
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-plain-subscriber",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    done.wait(timeout=600)
    client.loop_stop()
    client.disconnect()
    results.put((received, first, last))


class Confirmations:
    """Listens for ingest's confirmations; remembers when each event id was confirmed."""

    def __init__(self, port: int) -> None:
        self.confirmed: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-confirmations-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(
            "edgeplane/v1/devices/+/confirmations", qos=1
        )
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self.subscribed.wait(20):
            raise RuntimeError("could not subscribe to confirmations")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        ids = json.loads(message.payload)["event_ids"]
        with self.lock:
            for event_id in ids:
                self.confirmed.setdefault(event_id, now)

    def count(self) -> int:
        with self.lock:
            return len(self.confirmed)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for_ingest(port: int, device: str, confirmations: Confirmations) -> None:
    """Publish one event a second until ingest confirms one: then it is subscribed."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    now = datetime.now(UTC).isoformat()
    deadline = time.monotonic() + 120
    try:
        while confirmations.count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("ingest confirmed nothing within 120 s")
            event_id = str(uuid.uuid4())
            event = _event_json(event_id, f"tx-{event_id[:18]}", now)
            payload = (
                f'{{"schema_version":1,"device_id":"{device}","sent_at":"{now}",'
                f'"events":[{event}]}}'
            )
            client.publish(TOPIC.format(device), payload.encode(), qos=1)
            time.sleep(1.0)
    finally:
        client.loop_stop()
        client.disconnect()


@dataclass
class Result:
    name: str
    events: int
    messages: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


def collect(workers: list[Any], results: Any) -> list[tuple[list[str], float]]:
    sent: list[tuple[list[str], float]] = []
    for _ in workers:
        sent.extend(results.get(timeout=900))
    for worker in workers:
        worker.join(timeout=60)
    return sent


def baseline(port: int, devices: list[str], messages: int, processes: int) -> Result:
    ready, results = mp.Event(), mp.Queue()
    counter = mp.Process(target=counting_subscriber, args=(port, messages, ready, results))
    counter.start()
    if not ready.wait(20):
        raise RuntimeError("the plain subscriber did not subscribe")
    start = mp.Event()
    pub_results: Any = mp.Queue()
    share = messages // processes
    workers = [
        mp.Process(
            target=publisher,
            args=(port, devices[i::processes], share, 1, None, start, pub_results),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0 + messages / 20_000)  # let the publishers prepare their payloads
    start.set()
    sent = collect(workers, pub_results)
    received, _, last = results.get(timeout=900)
    counter.join(timeout=30)
    began = min(stamp for _, stamp in sent)
    return Result("plain paho subscriber (count only)", received, received, last - began)


def through_ingest(
    name: str,
    port: int,
    devices: list[str],
    confirmations: Confirmations,
    *,
    messages: int,
    per_message: int,
    processes: int,
    rate: float | None,
) -> Result:
    start = mp.Event()
    pub_results: Any = mp.Queue()
    share = messages // processes
    workers = [
        mp.Process(
            target=publisher,
            args=(
                port,
                devices[i::processes],
                share,
                per_message,
                rate / processes if rate else None,
                start,
                pub_results,
            ),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0 + messages * per_message / 20_000)
    before = confirmations.count()
    start.set()
    sent = collect(workers, pub_results)
    expected = before + share * processes * per_message
    deadline = time.monotonic() + 900
    while confirmations.count() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    if confirmations.count() < expected:
        raise RuntimeError(
            f"only {confirmations.count() - before} of {expected - before} confirmed"
        )
    with confirmations.lock:
        latencies = sorted(
            (confirmations.confirmed[event_id] - stamp) * 1000
            for ids, stamp in sent
            for event_id in ids
        )
        last = max(confirmations.confirmed[event_id] for ids, _ in sent for event_id in ids)
    began = min(stamp for _, stamp in sent)
    quantiles = statistics.quantiles(latencies, n=100)
    events = len(latencies)
    return Result(name, events, len(sent), last - began, quantiles[49], quantiles[98])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=40_000, help="messages, 1 event each")
    parser.add_argument("--batched-events", type=int, default=300_000, help="events, batched")
    parser.add_argument("--batch", type=int, default=100, help="events per batched message")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "EDGEPLANE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    args = parser.parse_args()

    database = f"edgeplane_bench_{secrets.token_hex(4)}"
    database_url = args.postgres_url.rsplit("/", 1)[0] + "/" + database
    workdir = Path(tempfile.mkdtemp(prefix="edgeplane-bench-"))
    port = free_port()
    env = {
        "EDGEPLANE_PROFILE": "production",
        "EDGEPLANE_DATA_DIR": str(workdir),
        "EDGEPLANE_DATABASE__URL": database_url,
        "EDGEPLANE_REDIS__URL": "redis://127.0.0.1:6379/14",
        "EDGEPLANE_STORAGE__BACKEND": "s3",
        "EDGEPLANE_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
        "EDGEPLANE_SECURITY__ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "EDGEPLANE_MQTT__HOST": "127.0.0.1",
        "EDGEPLANE_MQTT__PORT": str(port),
        "EDGEPLANE_LOG__LEVEL": "WARNING",
    }
    os.environ.update(env)

    from sqlalchemy import create_engine, text

    from server.common.actor import Actor
    from server.core import migrations
    from server.core.db import make_engine
    from server.devices import service as devices_service
    from server.devices.schemas import EnrollmentTokenCreate, EnrollRequest

    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    broker: subprocess.Popen[bytes] | None = None
    ingest: subprocess.Popen[bytes] | None = None
    try:
        engine = make_engine(database_url)
        migrations.upgrade(engine)
        from sqlalchemy.orm import Session

        devices: list[str] = []
        with Session(engine) as session, session.begin():
            for index in range(args.devices):
                issued = devices_service.create_enrollment_token(
                    session, actor=Actor.system("bench"), data=EnrollmentTokenCreate()
                )
                enrolled = devices_service.enroll(
                    session,
                    token=issued.token,
                    data=EnrollRequest(name=f"bench-{index}"),
                    ip=None,
                    request_id=None,
                )
                devices.append(str(enrolled.device.id))

        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"
            f"persistence true\npersistence_location {workdir}/\n"
            "max_queued_messages 10000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"
        )
        broker = subprocess.Popen(
            [args.mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(port)

        print(
            f"machine: {os.cpu_count()} cores; {args.publishers} publisher processes, "
            f"{args.devices} devices",
            flush=True,
        )
        plain = baseline(port, devices, args.messages, args.publishers)
        print(f"  {plain.name}: {plain.messages_per_second:,.0f} msg/s", flush=True)

        ingest = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "ingest", "--client-id", "bench-ingest"],
            env=os.environ.copy(),
            cwd=ROOT,
        )
        confirmations = Confirmations(port)
        wait_for_ingest(port, devices[0], confirmations)
        single = through_ingest(
            "ingest, 1 event/message",
            port,
            devices,
            confirmations,
            messages=args.messages,
            per_message=1,
            processes=args.publishers,
            rate=None,
        )
        print(f"  {single.name}: {single.events_per_second:,.0f} events/s", flush=True)
        batched = through_ingest(
            f"ingest, {args.batch} events/message",
            port,
            devices,
            confirmations,
            messages=args.batched_events // args.batch,
            per_message=args.batch,
            processes=args.publishers,
            rate=None,
        )
        print(f"  {batched.name}: {batched.events_per_second:,.0f} events/s", flush=True)
        paced_single = through_ingest(
            "ingest, 1 event/message at half rate",
            port,
            devices,
            confirmations,
            messages=min(args.messages, int(single.messages_per_second * 10)),
            per_message=1,
            processes=args.publishers,
            rate=single.messages_per_second / 2,
        )
        paced_batched = through_ingest(
            f"ingest, {args.batch} events/message at half rate",
            port,
            devices,
            confirmations,
            messages=min(args.batched_events // args.batch, int(batched.messages_per_second * 10)),
            per_message=args.batch,
            processes=args.publishers,
            rate=batched.messages_per_second / 2,
        )
        confirmations.close()
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM scored_events")).scalar_one()
            distinct = connection.execute(
                text("SELECT count(DISTINCT (device_id, event_id)) FROM scored_events")
            ).scalar_one()
        engine.dispose()
    finally:
        if ingest is not None:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(timeout=30)
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'phase':<46} {'events/s':>10} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for result in (plain, single, batched, paced_single, paced_batched):
        p50 = f"{result.p50_ms:8.1f}" if result.p50_ms is not None else f"{'':>8}"
        p99 = f"{result.p99_ms:8.1f}" if result.p99_ms is not None else f"{'':>8}"
        print(
            f"{result.name:<46} {result.events_per_second:>10,.0f} "
            f"{result.messages_per_second:>9,.0f} {p50} {p99}"
        )
    print()
    ratio = single.messages_per_second / plain.messages_per_second
    print(f"ingest / plain subscriber, 1 event per message: {ratio:.2f}x (aim: >= 0.5x)")
    print(f"batched into PostgreSQL: {batched.events_per_second:,.0f} events/s (aim: >= 20,000)")
    print(f"rows stored: {stored:,} (distinct device+event: {distinct:,})")


if __name__ == "__main__":
    main()

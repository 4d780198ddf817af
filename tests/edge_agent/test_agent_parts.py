"""The agent's parts one by one: settings, inference, scoring loop, HTTP app, CLI, inputs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.comms.outbox import Kind, Outbox
from edge_agent.config import load_settings
from edge_agent.control_plane import ControlPlaneError
from edge_agent.daemon import Agent
from edge_agent.features import N_FEATURES
from edge_agent.http import ScoringApp
from edge_agent.inference import InferenceError, ModelLoadError, TFLiteModel
from edge_agent.pipeline import Decision, EventPolicy, Scorer, WorkItem, event_id_for
from edge_agent.protocol.artifact import load_public_key
from edge_agent.protocol.messages import ScoredEvent, Telemetry
from edge_agent.telemetry import TelemetryWindow
from edge_agent.updates import ModelManager, ModelStore
from edge_agent.updates.manager import probe_vectors
from tests.edge_agent.support import (
    MODELS,
    PUBLIC_KEY_FILE,
    ROOT,
    expected_anomalies,
    jsonl,
    manifest_of,
    traffic,
    write_credentials,
)
from tests.processes import Mosquitto, wait_for

KEYS = [load_public_key(PUBLIC_KEY_FILE.read_text())]
DEVICE = "0b9a3c52-7f0e-4d1e-9a4e-3f2a1c0d9e8b"


def manager_with(tmp_path: Path, *names: str) -> ModelManager:
    manager = ModelManager(ModelStore(tmp_path / "models"), public_keys=KEYS, max_batch=64)
    for name in names:
        assert manager.install_from_directory(MODELS / name, origin="test"), manager.last_update
    return manager


def scorer_for(manager: ModelManager, outbox: Outbox | None = None, rate: float = 0.0) -> Scorer:
    return Scorer(
        manager,
        outbox=outbox,
        policy=EventPolicy(DEVICE, rate) if outbox is not None else None,
        max_batch=64,
        max_queued=1024,
        max_cards=1000,
        max_terminals=100,
    )


def test_settings_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'state_dir = "/srv/agent"\n[mqtt]\nversion = "3.1.1"\n[scoring]\nsample_rate = 0.05\n'
    )
    monkeypatch.setenv("EDGEPLANE_AGENT_SCORING__SAMPLE_RATE", "0.2")
    monkeypatch.setenv("EDGEPLANE_AGENT_HTTP__PORT", "9001")
    settings = load_settings(config)
    assert settings.state_dir == Path("/srv/agent")
    assert settings.mqtt.version == "3.1.1"
    assert settings.scoring.sample_rate == 0.2
    assert settings.http.port == 9001
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_batched_scores_equal_one_by_one_and_bad_models_are_refused() -> None:
    model = TFLiteModel(
        (MODELS / "mlp-1" / "model.tflite").read_bytes(), n_features=N_FEATURES, max_batch=64
    )
    x = probe_vectors()
    x = np.vstack([x] * 3)  # 192 rows: more than the largest bucket
    batched = model.predict(x)
    single = np.concatenate([model.predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    assert batched.shape == (len(x),)
    assert np.all((batched >= 0) & (batched <= 1))
    with pytest.raises(ModelLoadError):
        TFLiteModel((MODELS / "wrong-shape" / "model.tflite").read_bytes(), n_features=N_FEATURES)
    with pytest.raises(ModelLoadError):
        TFLiteModel(b"not a flatbuffer" * 10, n_features=N_FEATURES)


def test_start_falls_back_to_the_previous_model_when_the_current_one_is_damaged(
    tmp_path: Path,
) -> None:
    manager = manager_with(tmp_path, "mlp-1", "mlp-2")
    assert manager.active is not None
    current = manager.store.path(manager.active.name)
    (current / "model.tflite").write_bytes(b"damaged on disk")

    restarted = ModelManager(ModelStore(tmp_path / "models"), public_keys=KEYS, max_batch=64)
    restarted.start()
    assert restarted.active is not None
    assert restarted.active.version == "1"
    assert "cannot be loaded" in (restarted.last_update or "")
    assert restarted.take_load_failures() == 1


def test_a_model_that_raises_is_rolled_back_and_the_batch_rescored(tmp_path: Path) -> None:
    manager = manager_with(tmp_path, "mlp-1", "mlp-2")
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 24)
    scorer = scorer_for(manager, outbox)
    broken = manager.active
    assert broken is not None

    def explode(x: object) -> np.ndarray:
        raise InferenceError("tensor arena exhausted")

    broken.model.predict = explode  # type: ignore[method-assign]
    results: list[Decision] = []
    scorer.process([WorkItem(traffic(10), lambda d, e: results.extend(d or []))])
    assert [d.model_version for d in results] == ["1"] * 10
    assert scorer.window.take(0.0).inference_errors == 1
    assert "rolled back 2 to 1" in (manager.last_update or "")

    # With no model left, interactive requests get an error rather than a guess.
    manager.active.model.predict = explode  # type: ignore[method-assign,union-attr]
    errors: list[BaseException | None] = []
    scorer.process([WorkItem(traffic(1), lambda d, e: errors.append(e))])
    assert len(errors) == 1
    assert errors[0] is not None
    outbox.close()


def test_scoring_loop_writes_anomalies_samples_and_telemetry(tmp_path: Path) -> None:
    manager = manager_with(tmp_path, "mlp-1")
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 24)
    scorer = scorer_for(manager, outbox, rate=0.05)
    transactions = traffic(1500)
    scorer.start()
    for start in range(0, len(transactions), 50):
        assert scorer.submit_stream(WorkItem(transactions[start : start + 50]), timeout=10)
    scorer.stop()
    telemetry = scorer.emit_telemetry()

    anomalies = set(outbox.event_ids(Kind.ANOMALY))
    assert anomalies == expected_anomalies(DEVICE, transactions, "mlp-1")
    samples = outbox.event_ids(Kind.SAMPLE)
    assert 0 < len(samples) < 0.2 * len(transactions)
    assert not anomalies & set(samples)
    assert telemetry is not None
    assert telemetry.scored == len(transactions)
    assert telemetry.flagged == len(anomalies)
    assert sum(telemetry.score_histogram) == len(transactions)
    assert 0 < telemetry.latency.p50_ms <= telemetry.latency.p95_ms <= telemetry.latency.p99_ms
    assert telemetry.model_version == "1"
    assert telemetry.outbox.depth == len(anomalies) + len(samples)
    assert "installed 1" in (telemetry.last_update or "")
    row = outbox._db.execute(
        "SELECT payload FROM outbox WHERE channel = 'anomalies' LIMIT 1"
    ).fetchone()
    event = ScoredEvent.model_validate_json(row[0])
    assert event.flagged
    assert event.score >= manifest_of("mlp-1").threshold
    assert event.event_id == event_id_for(DEVICE, event.transaction)
    stored = outbox._db.execute("SELECT payload FROM outbox WHERE channel = 'telemetry'").fetchall()
    assert Telemetry.model_validate_json(stored[-1][0]).event_id == telemetry.event_id
    outbox.close()


def test_latency_percentiles_come_from_the_window() -> None:
    window = TelemetryWindow(0.0)
    latencies = np.array([0.001] * 90 + [0.010] * 9 + [0.100], dtype=np.float64)
    window.record(np.zeros(100, dtype=np.float32), 0, latencies, np.ones(100, dtype=np.int64))
    snapshot = window.take(10.0)
    assert snapshot.p50_ms == pytest.approx(1.0, rel=0.03)
    assert snapshot.p95_ms == pytest.approx(10.0, rel=0.03)
    assert snapshot.p99_ms == pytest.approx(10.0, rel=0.03)
    assert snapshot.seconds == 10.0
    assert window.take(20.0).scored == 0  # a new window


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ScoringApp]:
    scorer = scorer_for(manager_with(tmp_path, "mlp-1"))
    scorer.start()
    yield ScoringApp(scorer, token="local-secret", status=lambda: {"ok": True})
    scorer.stop()


def test_http_endpoint(app: ScoringApp) -> None:
    tx = traffic(1)[0]
    auth = {"Authorization": "Bearer local-secret"}

    async def exercise() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            return [
                await client.post("/v1/score", content=tx.model_dump_json(), headers=auth),
                await client.post("/v1/score", content=tx.model_dump_json()),
                await client.post("/v1/score", content=b'{"amount": -1}', headers=auth),
                await client.post("/v1/score", content=b"x" * 70_000, headers=auth),
                await client.get("/v1/score", headers=auth),
                await client.get("/healthz"),
                await client.get("/readyz"),
                await client.get("/v1/status"),
                await client.get("/nowhere"),
            ]

    ok, unauthorised, invalid, large, wrong_method, health, ready, status, missing = asyncio.run(
        exercise()
    )
    body = ok.json()
    assert ok.status_code == 200
    assert body["transaction_id"] == tx.transaction_id
    assert body["model_version"] == "1"
    assert body["decision"] in ("flag", "pass")
    assert body["flagged"] == (body["score"] >= body["threshold"])
    assert unauthorised.status_code == 401
    assert invalid.status_code == 422
    assert large.status_code == 413
    assert wrong_method.status_code == 405
    assert (health.status_code, ready.status_code) == (200, 200)
    assert status.json()["ok"] is True
    assert status.json()["http"]["requests"] == 3  # the scored ones, refused or not
    assert missing.status_code == 404


def test_http_endpoint_without_a_model_says_not_ready(tmp_path: Path) -> None:
    manager = ModelManager(ModelStore(tmp_path / "models"), public_keys=KEYS, max_batch=64)
    app = ScoringApp(scorer_for(manager))

    async def exercise() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            ready = await client.get("/readyz")
            scored = await client.post("/v1/score", content=traffic(1)[0].model_dump_json())
            return ready.status_code, scored.status_code

    assert asyncio.run(exercise()) == (503, 503)


def test_score_command_prints_one_decision_per_line(tmp_path: Path) -> None:
    transactions = traffic(400)
    source = tmp_path / "tx.jsonl"
    source.write_bytes(jsonl(transactions) + b"not json\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "score",
            str(source),
            "--model",
            str(MODELS / "mlp-1"),
            "--key",
            str(PUBLIC_KEY_FILE),
        ],
        cwd=ROOT,
        env=env | {"EDGEPLANE_AGENT_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["transaction_id"] for d in decisions] == [t.transaction_id for t in transactions]
    flagged = {
        str(event_id_for(DEVICE, tx))
        for tx, d in zip(transactions, decisions, strict=True)
        if d["flagged"]
    }
    assert flagged == expected_anomalies(DEVICE, transactions, "mlp-1")
    assert b"1 unreadable" in result.stderr


def test_the_agent_imports_nothing_from_the_server() -> None:
    code = (
        "import sys, edge_agent.cli, edge_agent.daemon, edge_agent.http, edge_agent.inputs;"
        "bad = sorted(m for m in sys.modules if m == 'server' or m.startswith('server.'));"
        "heavy = sorted(m for m in ('fastapi', 'sqlalchemy', 'celery', 'tensorflow')"
        " if m in sys.modules);"
        "print(bad, heavy); sys.exit(1 if bad or heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    for path in (ROOT / "edge_agent").rglob("*.py"):
        text = path.read_text()
        assert "from server" not in text, path
        assert "import server" not in text, path


def test_terminal_topic_input_scores_and_acknowledges(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    state_dir = tmp_path / "state"
    credentials = write_credentials(
        state_dir, mqtt_port=broker.port, control_plane_url="http://127.0.0.1:9"
    )
    settings = load_settings(
        None,
        state_dir=state_dir,
        trusted_key_files=[PUBLIC_KEY_FILE],
        bootstrap_model=MODELS / "mlp-1",
        telemetry_interval_seconds=3600,
        mqtt={"enabled": False},
        http={"enabled": False},
        terminals={"enabled": True, "port": broker.port, "topic": "pos/+/transactions"},
    )
    agent = Agent(settings, credentials)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        agent.start()
        assert agent.terminals is not None
        wait_for(lambda: agent.terminals.connected, timeout=20, what="the terminals subscription")  # type: ignore[union-attr]
        transactions = traffic(300)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        for tx in transactions:
            publisher.publish(f"pos/{tx.terminal_id}/transactions", tx.model_dump_json(), qos=1)
        publisher.publish("pos/t-1/transactions", b"garbage", qos=1).wait_for_publish(10)
        wait_for(
            lambda: (
                agent.scorer.window.total_scored == len(transactions)
                and agent.scorer.window.total_invalid == 1
            ),
            timeout=60,
            what="the terminals' transactions scored",
        )
        anomalies = set(agent.outbox.event_ids(Kind.ANOMALY))
        assert anomalies == expected_anomalies(credentials.device_id, transactions, "mlp-1")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        agent.shutdown()
        broker.stop()
    shutil.rmtree(state_dir)


def test_the_credential_goes_to_the_control_plane_only(tmp_path: Path) -> None:
    from edge_agent.control_plane import ControlPlaneClient, Credentials

    credentials = write_credentials(
        tmp_path, mqtt_port=1883, control_plane_url="https://cp.example:8443"
    )
    assert Credentials.load(tmp_path) == credentials
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = request.headers.get("authorization")
        return httpx.Response(200, content=b"model bytes")

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = ControlPlaneClient(credentials, client=http)
        client.download("/api/v1/models/2/model.tflite", max_bytes=100)
        client.download("https://bucket.s3.example/models/2/model.tflite?sig=x", max_bytes=100)
        with pytest.raises(ControlPlaneError):
            client.download("/too-big", max_bytes=4)
    bearer = f"Bearer {credentials.credential.get_secret_value()}"
    assert seen["https://cp.example:8443/api/v1/models/2/model.tflite"] == bearer
    assert seen["https://bucket.s3.example/models/2/model.tflite?sig=x"] is None

"""``edgeplane demo``: the whole loop on one machine, with nothing installed by hand.

It starts the control plane on the embedded profile (API, worker with beat, ingest, an
in-process MQTT broker), enrolls a small fleet of edge agents in a few simulated K3s
clusters, and feeds each agent simulated point-of-sale traffic in real time. It trains
a first model and rolls it out; then the simulators switch on a new fraud pattern
(``merchant_shift``) and the loop has to notice the drift, retrain, canary the
candidate and promote it. ``--bad-model`` also rolls out a model that flags
everything, to show the automatic rollback.

The demo plays the two outside parties the loop needs: the card network, whose
chargebacks arrive a little after each fraud, and an operator who reviews flagged
transactions (by the simulators' ground truth).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console

logger = logging.getLogger(__name__)

CLUSTER_NAMES = ("store-eu-west", "store-eu-central", "store-us-east")
DEMO_STEPS = (
    {"percent": 34, "soak_seconds": 20, "min_devices": 1},
    {"percent": 100, "soak_seconds": 20, "min_devices": 1},
)
# A small fleet scores slowly: fewer transactions make an analysis in the demo.
DEMO_MIN_SCORED = 60
REVIEW_SECONDS = 10.0
DEMO_SAMPLE_RATE = 0.5
# Chargebacks follow a fraud within a minute in the story, not within weeks.
CHARGEBACK_DELAY_MAX = timedelta(seconds=60)
FEED_CHUNK = 2_000
WATCH_SECONDS = 2.0


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 6
    clusters: int = 3
    rate: float = 2.0
    """Transactions per second each device scores, in real time."""
    history: timedelta = timedelta(hours=3)
    """Simulated past each device scores at once when it gets its first model, so that
    its feature state (card histories) is warm, as on a device that has run a while."""
    drift_after: timedelta = timedelta(minutes=5)
    drift_rate: float = 0.1
    bad_model: bool = False
    port: int = 8000
    data_dir: Path = Path("var/demo")
    seed: int = 0
    training_days: int = 7


def demo_environment(options: DemoOptions) -> dict[str, str]:
    """Settings that make the loop turn in minutes rather than days. Values already in
    the environment win, so any of them can be changed for a run."""
    return {
        "EDGEPLANE_PROFILE": "embedded",
        "EDGEPLANE_DATA_DIR": str(options.data_dir),
        "EDGEPLANE_LOG__FILE": str(options.data_dir / "logs" / "demo.log"),
        "EDGEPLANE_PUBLIC_URL": f"http://127.0.0.1:{options.port}",
        "EDGEPLANE_DEVICES__HEARTBEAT_INTERVAL_SECONDS": "10",
        "EDGEPLANE_ROLLOUTS__TICK_SECONDS": "3",
        "EDGEPLANE_ROLLOUTS__AUTO_START": "true",
        "EDGEPLANE_ROLLOUTS__AUTO_STEP_PERCENTS": "[34, 100]",
        "EDGEPLANE_ROLLOUTS__AUTO_SOAK_SECONDS": "20",
        "EDGEPLANE_ROLLOUTS__AUTO_MIN_SCORED": str(DEMO_MIN_SCORED),
        "EDGEPLANE_TRAINING__SCHEDULE_HOURS": "0",
        "EDGEPLANE_TRAINING__DRIFT_CHECK_SECONDS": "20",
        # Minutes of one time of day are not comparable with days of training data (amounts
        # and merchant mix follow the hour), so in a story minutes long the feature check
        # only reports; the recall check, fed by chargebacks, is the one that sees the
        # new pattern.
        "EDGEPLANE_TRAINING__DRIFT_PSI_THRESHOLD": "5",
        "EDGEPLANE_TRAINING__DRIFT_COOLDOWN_HOURS": "0.05",
        "EDGEPLANE_TRAINING__FLAG_RATE_REFERENCE_HOURS": "0.05",
        # Retrain on the last quarter of an hour: the story's data. The gate holds out
        # its latest rows, so the new pattern is learnt once it is older than those: the
        # first retraining after drift is usually no better, the next one is.
        "EDGEPLANE_TRAINING__WINDOW_DAYS": str(15 / (24 * 60)),
        # Labels of the last minutes: the story is minutes long, not days.
        "EDGEPLANE_TRAINING__PRECISION_WINDOW_HOURS": "0.1",
        # Labels count once the chargebacks have had time to come.
        "EDGEPLANE_TRAINING__LABEL_SETTLE_HOURS": str(
            (CHARGEBACK_DELAY_MAX + timedelta(seconds=REVIEW_SECONDS)) / timedelta(hours=1)
        ),
        "EDGEPLANE_TRAINING__RECALL_MIN_FRAUD": "10",
    }


@dataclass
class Device:
    """One simulated point of sale: its agent process and the traffic it is fed."""

    id: uuid.UUID
    name: str
    cluster: str
    process: subprocess.Popen[bytes]
    simulator: Any
    log: IO[bytes]


@dataclass
class GroundTruth:
    """What the simulators know, released as chargebacks and operator reviews."""

    fraud: set[str] = field(default_factory=set)
    legitimate: set[str] = field(default_factory=set)
    charged_back: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.devices: list[Device] = []
        self.truth = GroundTruth()
        self.stop = threading.Event()
        self.started = datetime.now(UTC)
        self.drift_at = self.started + options.drift_after
        self._seen_events: set[int] = set()
        self._seen_runs: dict[uuid.UUID, str] = {}

    # The fleet

    def enroll_fleet(self) -> None:
        from edge_agent.control_plane import enroll
        from edge_agent.simulator import Simulator
        from server.clusters import service as clusters_service
        from server.clusters.orm import ClusterKind
        from server.clusters.schemas import ClusterCreate
        from server.common.actor import Actor
        from server.core.config import get_settings
        from server.core.db import session_scope
        from server.devices import service as devices_service
        from server.devices.schemas import EnrollmentTokenCreate
        from server.registry import service as registry_service

        settings = get_settings()
        actor = Actor.system("demo")
        names = CLUSTER_NAMES[: self.options.clusters]
        with session_scope() as session:
            clusters = [
                clusters_service.create_cluster(
                    session,
                    actor=actor,
                    data=ClusterCreate(name=name, kind=ClusterKind.K3S_EDGE, region=name[6:]),
                )
                for name in names
            ]
            tokens = [
                (
                    clusters[i % len(clusters)].name,
                    devices_service.create_enrollment_token(
                        session,
                        actor=actor,
                        data=EnrollmentTokenCreate(
                            description="demo device",
                            cluster_id=clusters[i % len(clusters)].id,
                            labels={"store": f"store-{i:03d}"},
                        ),
                    ).token,
                )
                for i in range(self.options.devices)
            ]
            trusted = registry_service.trusted_public_keys(session)
        agents_dir = settings.data_dir / "agents"
        for i, (cluster, token) in enumerate(tokens):
            name = f"pos-{cluster.removeprefix('store-')}-{i:02d}"
            state_dir = agents_dir / name
            state_dir.mkdir(parents=True, exist_ok=True)
            credentials = enroll(settings.public_url, token, name=name)
            credentials.save(state_dir)
            simulator = Simulator(
                self.store_traffic(
                    seed=self.options.seed * 1000 + i + 1,
                    start=self.started - self.options.history,
                    drift_at=self.drift_at,
                ).model_copy(update={"transaction_id_prefix": name})
            )
            self.devices.append(
                self._start_agent(
                    uuid.UUID(credentials.device_id), name, cluster, state_dir, trusted, simulator
                )
            )
        self.console.print(
            f"fleet: {len(self.devices)} agents in {len(names)} clusters ({', '.join(names)}), "
            f"{self.options.rate:g} transactions/s each"
        )

    def _start_agent(
        self,
        device_id: uuid.UUID,
        name: str,
        cluster: str,
        state_dir: Path,
        trusted: list[str],
        simulator: Any,
    ) -> Device:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
        environment |= {
            "EDGEPLANE_AGENT_STATE_DIR": str(state_dir),
            "EDGEPLANE_AGENT_DEVICE_NAME": name,
            "EDGEPLANE_AGENT_TRUSTED_KEYS": json.dumps(trusted),
            "EDGEPLANE_AGENT_TELEMETRY_INTERVAL_SECONDS": "5",
            "EDGEPLANE_AGENT_DESIRED_POLL_SECONDS": "15",
            "EDGEPLANE_AGENT_MQTT__VERSION": "3.1.1",
            "EDGEPLANE_AGENT_HTTP__ENABLED": "false",
            # Half the traffic as samples: in minutes, enough charged-back fraud to learn from.
            "EDGEPLANE_AGENT_SCORING__SAMPLE_RATE": str(DEMO_SAMPLE_RATE),
        }
        log = (state_dir / "agent.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--input", "-"],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return Device(
            id=device_id,
            name=name,
            cluster=cluster,
            process=process,
            simulator=simulator,
            log=log,
        )

    def feed(self, device: Device) -> None:
        """Once the device runs a model: its simulated past at once, then its traffic as
        the wall clock reaches each payment."""
        stdin = device.process.stdin
        assert stdin is not None
        while not self.stop.is_set() and not self._runs_a_model(device.id):
            self.stop.wait(WATCH_SECONDS)
        try:
            while not self.stop.is_set():
                now = datetime.now(UTC)
                chunk: list[bytes] = []
                for transaction in device.simulator.stream(until=now):
                    chunk.append(transaction.model_dump_json().encode() + b"\n")
                    if len(chunk) >= FEED_CHUNK:
                        stdin.write(b"".join(chunk))
                        chunk.clear()
                stdin.write(b"".join(chunk))
                stdin.flush()
                self._learn(device.simulator, now)
                self.stop.wait(0.5)
        except (BrokenPipeError, ValueError):
            if not self.stop.is_set():
                self.console.print(f"[red]{device.name}: the agent stopped reading[/red]")

    @staticmethod
    def _runs_a_model(device_id: uuid.UUID) -> bool:
        from server.core.db import session_scope
        from server.devices import service as devices_service

        with session_scope() as session:
            return devices_service.get_device(session, device_id).model_version is not None

    def _learn(self, simulator: Any, now: datetime) -> None:
        released = simulator.labels.released(until=now)
        with self.truth.lock:
            for label in released:
                (self.truth.fraud if label.is_fraud else self.truth.legitimate).add(
                    label.transaction_id
                )

    # The outside parties

    def review(self) -> None:
        """Chargebacks for known fraud; operator labels for flagged transactions."""
        from server.anomalies import service as anomalies_service
        from server.anomalies.orm import Label
        from server.anomalies.schemas import ChargebackCreate, LabelFilter
        from server.common.actor import Actor
        from server.common.pagination import PageParams
        from server.core.db import session_scope

        while not self.stop.wait(REVIEW_SECONDS):
            with self.truth.lock:
                due = sorted(self.truth.fraud - self.truth.charged_back)
                self.truth.charged_back.update(due)
                fraud, legitimate = set(self.truth.fraud), set(self.truth.legitimate)
            try:
                with session_scope() as session:
                    if due:
                        anomalies_service.import_chargebacks(
                            session,
                            actor=Actor.system("card-network"),
                            chargebacks=[ChargebackCreate(transaction_id=tx) for tx in due],
                        )
                    events, _ = anomalies_service.list_events(
                        session,
                        filters=anomalies_service.EventFilters(label=LabelFilter.UNLABELLED),
                        params=PageParams(limit=500),
                    )
                    reviewer = Actor.system("demo-operator")
                    for label, known in (
                        (Label.CONFIRMED_FRAUD, fraud),
                        (Label.FALSE_POSITIVE, legitimate),
                    ):
                        ids = [event.id for event in events if event.transaction_id in known]
                        if ids:
                            anomalies_service.label_events(
                                session, actor=reviewer, ids=ids, label=label
                            )
            except Exception:
                logger.exception("the demo's review round failed; trying again")

    # The loop's first model

    def first_model(self) -> uuid.UUID:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from server.common.actor import Actor
        from server.core.db import session_scope
        from server.registry import service as registry_service
        from server.registry.schemas import ModelMetadata
        from server.training import service as training_service
        from server.training.profile import build_profile

        self.console.print(
            f"training a first model on {self.options.training_days} simulated days "
            "(a minute or two)"
        )
        started = time.monotonic()
        output = Path(self.options.data_dir) / "first-model"
        result = training_service.train(
            training_service.TrainingOptions(
                seed=self.options.seed,
                days=self.options.training_days,
            ),
            output_dir=output,
            # The registry signs with the control plane's key; this one signs the scratch copy.
            private_key=Ed25519PrivateKey.generate(),
        )
        manifest = result.manifest
        with session_scope() as session:
            model = registry_service.register_model(
                session,
                actor=Actor.system("demo"),
                model_bytes=result.model_bytes[manifest.quantization],
                metadata=ModelMetadata.from_manifest(manifest, code_version="edgeplane demo"),
                source="demo",
            )
            # What the drift check compares the fleet's samples with.
            model.lineage = {
                **model.lineage,
                "feature_profile": build_profile(result.split.train.features).model_dump(
                    mode="json"
                ),
            }
            label, model_id = model.label, model.id
        self.console.print(
            f"registered [bold]{label}[/bold] in {time.monotonic() - started:.0f} s: "
            f"PR-AUC {manifest.metrics['pr_auc']:.3f} on held-out simulated days"
        )
        return model_id

    def roll_out(self, model_id: uuid.UUID) -> uuid.UUID:
        from server.common.actor import Actor
        from server.core.db import session_scope
        from server.rollouts import service as rollouts_service
        from server.rollouts.schemas import RolloutCreate

        with session_scope() as session:
            rollout = rollouts_service.start_rollout(
                session,
                actor=Actor.system("demo"),
                data=RolloutCreate.model_validate(
                    {
                        "model_id": model_id,
                        "steps": list(DEMO_STEPS),
                        "thresholds": {"min_scored": DEMO_MIN_SCORED},
                    }
                ),
            )
            return rollout.id

    def bad_model(self, stable_id: uuid.UUID) -> uuid.UUID:
        """The stable model's own network with a threshold of 0: it flags every payment."""
        from edge_agent.protocol.artifact import ModelManifest
        from server.common.actor import Actor
        from server.core.db import session_scope
        from server.registry import service as registry_service
        from server.registry.schemas import ModelMetadata

        with session_scope() as session:
            stable = registry_service.get_model(session, stable_id)
            parsed = ModelManifest.model_validate_json(stable.manifest)
            model = registry_service.register_model(
                session,
                actor=Actor.system("demo"),
                model_bytes=registry_service.artifact_file(stable, "model.tflite"),
                metadata=ModelMetadata.from_manifest(
                    parsed,
                    threshold=0.0,
                    metrics={},
                    parent_version_id=stable.id,
                    code_version="edgeplane demo (bad on purpose)",
                ),
                source="demo-bad-model",
            )
            self.console.print(
                f"[yellow]--bad-model: rolling out {model.label}, which flags every "
                "payment[/yellow]"
            )
            return model.id

    def wait_for_rollout(self, rollout_id: uuid.UUID) -> str:
        from server.core.db import session_scope
        from server.rollouts import service as rollouts_service

        while not self.stop.is_set():
            self.watch()
            with session_scope() as session:
                state = rollouts_service.get_rollout(session, rollout_id).state
            if not state.active:
                return state.value
            self.stop.wait(WATCH_SECONDS)
        return "interrupted"

    # What the operator sees

    def watch(self) -> None:
        """Print rollout timeline entries and training runs as they happen."""
        from sqlalchemy.exc import OperationalError

        try:
            self._print_news()
        except OperationalError as exc:
            logger.warning("the demo could not read the news this round: %s", exc)

    def _print_news(self) -> None:
        from sqlalchemy import select

        from server.core.db import session_scope
        from server.registry import service as registry_service
        from server.rollouts.orm import Rollout, RolloutEvent
        from server.training.orm import RunTrigger, TrainingRun
        from server.training.service import RETRAINING_SOURCE

        with session_scope() as session:
            events = session.execute(
                select(RolloutEvent, Rollout.model_id, Rollout.baseline_model_id)
                .join(Rollout, Rollout.id == RolloutEvent.rollout_id)
                .order_by(RolloutEvent.id)
            ).all()
            recovered: list[tuple[uuid.UUID | None, uuid.UUID]] = []
            for event, model_id, baseline_id in events:
                if event.id in self._seen_events or event.kind == "analysis_passed":
                    continue
                self._seen_events.add(event.id)
                model = registry_service.get_model(session, model_id)
                style = {"rolled_back": "red", "promoted": "green"}.get(event.kind, "cyan")
                self.console.print(
                    f"{_clock(event.at)} [{style}]rollout of {model.label}:[/{style}] "
                    f"{event.message}"
                )
                if event.kind == "promoted" and model.lineage.get("source") == RETRAINING_SOURCE:
                    recovered.append((baseline_id, model_id))
            for run in session.scalars(select(TrainingRun).order_by(TrainingRun.created_at)):
                if self._seen_runs.get(run.id) == run.state.value:
                    continue
                self._seen_runs[run.id] = run.state.value
                detail = run.reason or run.error or ""
                fired = run.evidence.get("fired") if run.trigger is RunTrigger.DRIFT else None
                trigger = run.trigger.value + (f": {', '.join(fired)}" if fired else "")
                self.console.print(
                    f"{_clock(run.finished_at or run.started_at or run.created_at)} "
                    f"[magenta]retraining ({trigger})[/magenta] {run.state.value}"
                    + (f": {detail}" if detail else "")
                )
        for before_id, after_id in recovered:
            if before_id is not None:
                self.report_recovery(before_id, after_id)

    def store_traffic(self, *, seed: int, start: datetime, drift_at: datetime) -> Any:
        """One store's simulated payments, as the fleet's devices are fed."""
        from server.training.dataset import TrafficConfig

        # Cards and stores in proportion to the traffic, as in the first model's training
        # data: the same density of payments per card, so the same feature distributions.
        traffic = TrafficConfig(transactions_per_second=self.options.rate).simulator_config()
        return traffic.model_copy(
            update={
                "seed": seed,
                "start": start,
                "drift_at": drift_at,
                "drift_rate": self.options.drift_rate,
                # The new pattern's cards are used within a minute, not within the hour,
                # so the story needs minutes, not hours.
                "drift_delay_min": timedelta(seconds=10),
                "drift_delay_max": timedelta(seconds=60),
                "chargeback_delay_min": timedelta(seconds=20),
                "chargeback_delay_max": CHARGEBACK_DELAY_MAX,
                "legit_label_delay": timedelta(seconds=20),
            }
        )

    def report_recovery(self, before_id: uuid.UUID, after_id: uuid.UUID) -> None:
        """Both models on a store's payments they have not seen, as the fleet is fed, an
        hour into the new pattern: the recall on it is what retraining was for."""
        import numpy as np

        from edge_agent.features import FeatureExtractor
        from edge_agent.simulator import FraudType, Simulator
        from server.core.db import session_scope
        from server.registry import service as registry_service
        from server.training import model as mlp
        from server.training.evaluation import evaluate

        start = datetime.now(UTC)
        simulator = Simulator(
            self.store_traffic(
                seed=self.options.seed * 1000 + 999,
                start=start - self.options.history,
                drift_at=start - timedelta(hours=1),
            )
        )
        payments = list(simulator.stream(until=start))
        truth = {label.transaction_id: label for label in simulator.labels.drain()}
        features = FeatureExtractor().transform_many(payments)
        recent = np.array([tx.timestamp >= start - timedelta(hours=1) for tx in payments])
        kinds = np.array(
            [
                "" if (fraud := truth[tx.transaction_id].fraud_type) is None else fraud.value
                for tx in payments
            ]
        )
        labels = (kinds != "").astype(np.int8)
        kind = FraudType.MERCHANT_SHIFT.value
        with session_scope() as session:
            for model_id, role in ((before_id, "before"), (after_id, "after")):
                model = registry_service.get_model(session, model_id)
                scores = mlp.tflite_scores(
                    registry_service.artifact_file(model, "model.tflite"), features[recent]
                )
                metrics = evaluate(labels[recent], scores, kinds[recent], threshold=model.threshold)
                self.console.print(
                    f"  {role} retraining, {model.label}: recall on {kind} "
                    f"[bold]{metrics.recall_by_type.get(kind, 0.0):.2f}[/bold], on all fraud "
                    f"{metrics.recall:.2f}, precision {metrics.precision:.2f} "
                    f"({metrics.positives} frauds in {metrics.rows:,} simulated payments)"
                )

    def shut_down(self) -> None:
        self.stop.set()
        for device in self.devices:
            with suppress(OSError, ValueError):
                if device.process.stdin is not None:
                    device.process.stdin.close()
            device.process.terminate()
        for device in self.devices:
            try:
                device.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                device.process.kill()
            device.log.close()


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


@contextmanager
def _api_in_thread(port: int) -> Iterator[None]:
    import uvicorn

    config = uvicorn.Config(
        "server.app:create_app", factory=True, host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_until_ready(base_url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set():
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the control plane at {base_url} did not become ready")


def run(options: DemoOptions, console: Console) -> None:
    """Start everything, drive the story, and stop cleanly on Ctrl-C."""
    for key, value in demo_environment(options).items():
        os.environ.setdefault(key, value)
    from server.core.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    if settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    settings.data_dir.mkdir(parents=True)

    from server.cli import ensure_first_admin, migrate
    from server.core.embedded import ChildProcesses

    demo = Demo(options, console)
    logs = settings.data_dir / "logs"
    logs.mkdir()
    console.print(f"logs of every part of the demo: {logs}/")
    with ChildProcesses() as children:
        migrate("head")
        ensure_first_admin()
        if settings.run_embedded_broker:
            children.start("mqtt broker", "mqtt-broker", output=logs / "mqtt-broker.log")
        children.start("worker", "worker", "--beat", output=logs / "worker.log")
        children.start("ingest", "ingest", output=logs / "ingest.log")
        with _api_in_thread(options.port):
            try:
                _wait_until_ready(settings.public_url, demo.stop)
                console.print(
                    f"[bold]dashboard: {settings.public_url}/[/bold] "
                    "(sign in as admin with the password above). Ctrl-C stops the demo."
                )
                _story(demo, console)
            except KeyboardInterrupt:
                console.print("stopping the demo")
            finally:
                demo.shut_down()


def _story(demo: Demo, console: Console) -> None:
    demo.enroll_fleet()
    for device in demo.devices:
        threading.Thread(target=demo.feed, args=(device,), name=device.name, daemon=True).start()
    threading.Thread(target=demo.review, name="review", daemon=True).start()

    first = demo.first_model()
    outcome = demo.wait_for_rollout(demo.roll_out(first))
    console.print(f"first rollout {outcome}")
    if demo.options.bad_model and outcome == "succeeded":
        outcome = demo.wait_for_rollout(demo.roll_out(demo.bad_model(first)))
        console.print(f"bad model rollout {outcome}")
    console.print(
        f"the new fraud pattern starts at {_clock(demo.drift_at)}; the drift check, "
        "retraining and the rollout of the retrained model follow on their own"
    )
    while True:
        demo.watch()
        time.sleep(WATCH_SECONDS)

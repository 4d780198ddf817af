"""Rollout fan-out: planning a step and publishing desired state, and rolling back.

Run with ``.venv/bin/python bench/rollout.py`` (PostgreSQL on 127.0.0.1:5432 and the
mosquitto binary needed; the bench creates, then drops, its own database and starts its
own broker on a free port). With ``--devices`` registered devices (inserted in bulk, all
on a stable model whose retained desired state is already on the broker), each repeat
measures, in one run on the same machine:

1. raw: ``publish_retained`` (the control plane's own client code path) of N retained
   messages of the same size as desired-state messages, to N device topics: the baseline;
2. plan + publish: ``start_rollout`` with a first step of ``--step-percent`` (N devices),
   committed, then what the worker's ``rollouts.publish_desired`` task does with the ids
   the commit enqueued (``desired_messages`` + ``publish_retained``);
3. rollback: with telemetry that fails the flag-rate check in the database,
   ``advance_by_id`` (analysis, then roll back) committed, then the same publish task,
   until every canary device's rollback message is acknowledged by the broker.

The figures that compare across machines are plan + publish / raw and rollback / raw
(aim: within 2x). The Celery hop is left out: the task id list the commit would enqueue
is captured and the task body runs in this process, as a worker would run it. The
embedded profile is used with PostgreSQL, an external broker and a local object store
(the production profile insists on S3 for the model files, which this does not measure).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "tests" / "edge_agent" / "fixtures" / "models" / "mlp-1"
INSERT_CHUNK = 10_000


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


class Phases:
    """Seconds spent in named service functions, collected by wrapping them in place."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, module: ModuleType, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        setattr(module, name, timed)

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken


@contextmanager
def maybe_profile(enabled: bool, label: str, out: Path) -> Iterator[None]:
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(out / f"bench-rollout-{label}.prof")
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(18)
        print(f"--- profile: {label} (by own time) ---")
        print("\n".join(text.getvalue().splitlines()[6:]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="registered devices")
    parser.add_argument(
        "--step-percent", type=float, default=50.0, help="first step of the rollout, percent"
    )
    parser.add_argument("--repeat", type=int, default=1, help="raw / plan / rollback rounds")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "EDGEPLANE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-rollout.json")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile plan + publish and rollback of the first round (slows them down)",
    )
    args = parser.parse_args()

    database = f"edgeplane_bench_{secrets.token_hex(4)}"
    database_url = args.postgres_url.rsplit("/", 1)[0] + "/" + database
    workdir = Path(tempfile.mkdtemp(prefix="edgeplane-bench-"))
    port = free_port()
    os.environ.update(
        {
            "EDGEPLANE_PROFILE": "embedded",
            "EDGEPLANE_DATA_DIR": str(workdir),
            "EDGEPLANE_DATABASE__URL": database_url,
            "EDGEPLANE_STORAGE__BACKEND": "local",
            "EDGEPLANE_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
            "EDGEPLANE_MQTT__HOST": "127.0.0.1",
            "EDGEPLANE_MQTT__PORT": str(port),
            "EDGEPLANE_MQTT__EMBEDDED_BROKER": "false",
            "EDGEPLANE_LOG__LEVEL": "WARNING",
        }
    )

    from sqlalchemy import create_engine, delete, insert, select, text

    from edge_agent.features import FEATURE_SPEC_VERSION
    from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
    from edge_agent.protocol.topics import Channel, device_topic
    from server.common.actor import Actor
    from server.core import migrations, mqtt
    from server.core.config import get_settings
    from server.core.db import get_engine, session_scope, utcnow
    from server.devices.orm import Device, DeviceStatus
    from server.ingest.orm import TelemetryWindow
    from server.registry import service as registry_service
    from server.registry.orm import ModelStage
    from server.registry.schemas import ModelMetadata
    from server.rollouts import service as rollouts_service
    from server.rollouts import tasks as rollouts_tasks
    from server.rollouts.orm import DesiredState
    from server.rollouts.schemas import RolloutCreate, RolloutStep
    from server.worker import celery_app

    settings = get_settings()
    actor = Actor.system("bench")
    model_bytes = (MODEL / "model.tflite").read_bytes()
    metadata = ModelMetadata(
        name="bench",
        feature_spec_version=FEATURE_SPEC_VERSION,
        threshold=0.7,
        training_start=datetime(2026, 1, 5, tzinfo=UTC),
        training_end=datetime(2026, 1, 12, tzinfo=UTC),
        training_rows=1000,
    )

    # The ids a commit would hand to Celery: captured, and the task body run here.
    enqueued: list[list[str]] = []

    def send_task(name: str, args: Any = None, **_: Any) -> None:
        assert name == rollouts_service.PUBLISH_TASK, name
        enqueued.append(list(args[0]))

    celery_app.send_task = send_task  # type: ignore[method-assign,assignment]

    phases = Phases()
    for name in ("_plan_step", "assign_model", "analyse_rollout", "_roll_back"):
        phases.wrap(rollouts_service, name)
    # The task looks these up at call time: desired_messages and retained_payloads on the
    # service module, publish_retained on its own.
    phases.wrap(rollouts_service, "desired_messages")
    phases.wrap(rollouts_service, "retained_payloads")
    phases.wrap(rollouts_tasks, "publish_retained")

    def take_enqueued() -> list[str]:
        if len(enqueued) != 1:
            raise RuntimeError(f"expected one publish task from the commit, got {len(enqueued)}")
        return enqueued.pop()

    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    broker: subprocess.Popen[bytes] | None = None
    rounds: list[dict[str, Any]] = []
    setup: dict[str, float] = {}
    load_before = os.getloadavg()
    try:
        engine = get_engine()
        migrations.upgrade(engine)

        began = time.perf_counter()
        with session_scope() as session:
            stable = registry_service.register_model(
                session, actor=actor, model_bytes=model_bytes, metadata=metadata, source="bench"
            )
            stable.stage = ModelStage.STABLE
            stable_id, stable_label = stable.id, stable.label
        device_ids = [uuid.uuid4() for _ in range(args.devices)]
        now = utcnow()
        with engine.begin() as connection:
            for start in range(0, len(device_ids), INSERT_CHUNK):
                chunk = device_ids[start : start + INSERT_CHUNK]
                connection.execute(
                    insert(Device),
                    [
                        {
                            "id": device_id,
                            "name": f"pos-{start + index:06d}",
                            "labels": {"region": "eu"},
                            "status": DeviceStatus.ONLINE,
                            "agent_version": "bench",
                            "model_version": stable_label,
                            "health": {},
                            "enrolled_at": now,
                            "last_seen_at": now,
                        }
                        for index, device_id in enumerate(chunk)
                    ],
                )
                connection.execute(
                    insert(DesiredState),
                    [
                        {
                            "device_id": device_id,
                            "model_id": stable_id,
                            "rollout_id": None,
                            "generation": 1,
                            "updated_at": now,
                        }
                        for device_id in chunk
                    ],
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
        setup["insert_devices_s"] = time.perf_counter() - began

        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"
            f"persistence true\npersistence_location {workdir}/\n"
            "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"
        )
        broker = subprocess.Popen(
            [args.mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(port)

        # The stable model's desired state, retained on the broker before any rollout.
        began = time.perf_counter()
        with session_scope() as session:
            baseline_messages = rollouts_service.desired_messages(session, device_ids)
        mqtt.publish_retained(
            settings, rollouts_service.retained_payloads(baseline_messages), timeout=900
        )
        setup["initial_publish_s"] = time.perf_counter() - began
        del baseline_messages
        phases.take()

        n = math.ceil(args.step_percent / 100 * args.devices)
        steps = [RolloutStep(percent=args.step_percent, soak_seconds=300, min_devices=1)]
        if args.step_percent < 100:
            steps.append(RolloutStep(percent=100.0, soak_seconds=300))
        print(
            f"machine: {os.cpu_count()} cores, load {load_before[0]:.2f}; {args.devices:,} "
            f"devices, step {args.step_percent:g}% = {n:,} devices; setup "
            f"{setup['insert_devices_s']:.1f} s insert, {setup['initial_publish_s']:.1f} s "
            "initial publish",
            flush=True,
        )

        def raw_publish(template: str, label: str) -> float:
            """``publish_retained`` of N messages like ``template``, to N device topics."""
            raw = [
                (
                    device_topic(str(device_id), Channel.DESIRED),
                    template.replace(str(device_ids[0]), str(device_id)).encode(),
                )
                for device_id in device_ids[:n]
            ]
            began = time.perf_counter()
            published = mqtt.publish_retained(settings, raw, timeout=900)
            seconds = time.perf_counter() - began
            assert published == n
            print(f"  {label}: raw publish of {n:,}: {seconds:.2f} s", flush=True)
            return seconds

        for round_index in range(args.repeat):
            profile = args.profile and round_index == 0
            with session_scope() as session:
                candidate = registry_service.register_model(
                    session,
                    actor=actor,
                    model_bytes=model_bytes,
                    metadata=metadata,
                    source="bench",
                )
                candidate_id, candidate_label = candidate.id, candidate.label

            # 1. raw: N retained messages, the size of the step's desired states (the new
            # model and a rollout id; for the rollback, the stable model and none).
            with session_scope() as session:
                base_url = settings.public_url.rstrip("/")
                templates = [
                    DesiredStateMessage(
                        device_id=str(device_ids[0]),
                        generation=2,
                        model=rollouts_service._desired_model(
                            registry_service.get_model(session, model_id), base_url
                        ),
                        rollout_id=rollout,
                        issued_at=utcnow(),
                    ).model_dump_json()
                    for model_id, rollout in (
                        (candidate_id, str(uuid.uuid4())),
                        (stable_id, None),
                    )
                ]
            sizes = [len(template.encode()) for template in templates]

            raw_s = raw_publish(templates[0], f"round {round_index + 1}, before plan + publish")

            # 2. plan + publish.
            phases.take()
            with maybe_profile(profile, "plan", workdir):
                began = time.perf_counter()
                with session_scope() as session:
                    rollout = rollouts_service.start_rollout(
                        session,
                        actor=actor,
                        data=RolloutCreate(model_id=candidate_id, steps=steps),
                    )
                    rollout_id = rollout.id
                    planned = time.perf_counter()
                committed = time.perf_counter()
                ids = take_enqueued()
                published = rollouts_tasks.publish_desired(ids)
                done = time.perf_counter()
            plan_phases = phases.take()
            assert published == len(ids) == n, (published, len(ids), n)
            plan = {
                "total_s": done - began,
                "transaction_s": planned - began,
                "commit_s": committed - planned,
                "plan_step_s": plan_phases["_plan_step"],
                "assign_model_s": plan_phases["assign_model"],
                "task_s": done - committed,
                "build_messages_s": plan_phases["desired_messages"]
                + plan_phases["retained_payloads"],
                "desired_messages_s": plan_phases["desired_messages"],
                "retained_payloads_s": plan_phases["retained_payloads"],
                "publish_s": plan_phases["publish_retained"],
            }
            print(
                f"  round {round_index + 1}: plan + publish: {plan['total_s']:.2f} s",
                flush=True,
            )

            # Telemetry since the rollout began: canary flags far more than stable.
            with session_scope() as session:
                cohort = set(
                    session.scalars(
                        select(DesiredState.device_id).where(DesiredState.rollout_id == rollout_id)
                    )
                )
            sent = utcnow()
            with engine.begin() as connection:
                for start in range(0, len(device_ids), INSERT_CHUNK):
                    connection.execute(
                        insert(TelemetryWindow),
                        [
                            {
                                "device_id": device_id,
                                "cluster_id": None,
                                "event_id": uuid.uuid4(),
                                "sent_at": sent,
                                "received_at": sent,
                                "window_seconds": 60.0,
                                "agent_version": "bench",
                                "model_version": (
                                    candidate_label if device_id in cohort else stable_label
                                ),
                                "feature_spec_version": FEATURE_SPEC_VERSION,
                                "scored": 500,
                                "flagged": 150 if device_id in cohort else 5,
                                "inference_errors": 0,
                                "model_load_failures": 0,
                                "latency_p50_ms": 0.2,
                                "latency_p95_ms": 0.5,
                                "latency_p99_ms": 0.9,
                                "score_histogram": [0] * 10,
                                "outbox": {},
                                "last_update": None,
                            }
                            for device_id in device_ids[start : start + INSERT_CHUNK]
                        ],
                    )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE telemetry_windows"))

            # 3. rollback: the failed analysis until every canary device is told, next to
            # a raw publish just before it (the load of a shared machine drifts).
            raw_back_s = raw_publish(templates[1], f"round {round_index + 1}, before rollback")
            phases.take()
            with maybe_profile(profile, "rollback", workdir):
                began = time.perf_counter()
                with session_scope() as session:
                    analysis = rollouts_service.advance_by_id(session, rollout_id)
                    decided = time.perf_counter()
                committed = time.perf_counter()
                ids = take_enqueued()
                published = rollouts_tasks.publish_desired(ids)
                done = time.perf_counter()
            back_phases = phases.take()
            if analysis is None or analysis.verdict != "fail":
                raise RuntimeError(f"the analysis did not fail: {analysis}")
            assert published == len(ids) == n, (published, len(ids), n)
            rollback = {
                "total_s": done - began,
                "transaction_s": decided - began,
                "analysis_s": back_phases["analyse_rollout"],
                "roll_back_s": back_phases["_roll_back"],
                "assign_model_s": back_phases["assign_model"],
                "commit_s": committed - decided,
                "task_s": done - committed,
                "build_messages_s": back_phases["desired_messages"]
                + back_phases["retained_payloads"],
                "desired_messages_s": back_phases["desired_messages"],
                "retained_payloads_s": back_phases["retained_payloads"],
                "publish_s": back_phases["publish_retained"],
                "after_analysis_s": done - began - back_phases["analyse_rollout"],
            }
            print(
                f"  round {round_index + 1}: rollback: {rollback['total_s']:.2f} s "
                f"({analysis.reason})",
                flush=True,
            )
            with engine.begin() as connection:
                connection.execute(delete(TelemetryWindow))
            rounds.append(
                {
                    "messages": n,
                    "message_bytes": sizes[0],
                    "rollback_message_bytes": sizes[1],
                    "raw_s": raw_s,
                    "raw_before_rollback_s": raw_back_s,
                    "plan_publish": plan,
                    "rollback": rollback,
                    "plan_publish_ratio": plan["total_s"] / raw_s,
                    "rollback_ratio": rollback["total_s"] / raw_back_s,
                    "rollback_after_analysis_ratio": rollback["after_analysis_s"] / raw_back_s,
                    "profiled": profile,
                }
            )
        engine.dispose()
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        if args.profile:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            for prof in workdir.glob("*.prof"):
                shutil.copy(prof, args.json.parent / prof.name)
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()

    def row(name: str, seconds: float, raw_s: float) -> str:
        return f"{name:<44} {seconds:>9.2f} {seconds / raw_s:>8.2f}x"

    print()
    print(
        f"{args.devices:,} devices, step {args.step_percent:g}%: {n:,} retained messages of "
        f"{rounds[0]['message_bytes']} bytes (rollback: {rounds[0]['rollback_message_bytes']}); "
        f"load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    for index, result in enumerate(rounds):
        raw_s, raw_back_s = result["raw_s"], result["raw_before_rollback_s"]
        plan, rollback = result["plan_publish"], result["rollback"]
        suffix = " (profiled)" if result["profiled"] else ""
        print()
        title = f"round {index + 1}{suffix}"
        print(f"{title:<44} {'seconds':>9} {'/ raw':>9}")
        print(row(f"raw publish_retained of {n:,}", raw_s, raw_s))
        print(row("plan + publish", plan["total_s"], raw_s))
        print(row("  plan (start_rollout, in the transaction)", plan["transaction_s"], raw_s))
        print(row("    of which _plan_step", plan["plan_step_s"], raw_s))
        print(row("      of which assign_model", plan["assign_model_s"], raw_s))
        print(row("  commit (and enqueue)", plan["commit_s"], raw_s))
        print(row("  build messages (desired_messages + json)", plan["build_messages_s"], raw_s))
        print(row("  publish (publish_retained)", plan["publish_s"], raw_s))
        print(row(f"raw publish_retained of {n:,}, again", raw_back_s, raw_back_s))
        print(row("rollback, failed analysis to last ack", rollback["total_s"], raw_back_s))
        print(row("  analysis (analyse_rollout)", rollback["analysis_s"], raw_back_s))
        print(
            row("  roll back (_roll_back, in the transaction)", rollback["roll_back_s"], raw_back_s)
        )
        print(row("  commit (and enqueue)", rollback["commit_s"], raw_back_s))
        print(row("  build messages", rollback["build_messages_s"], raw_back_s))
        print(row("  publish (publish_retained)", rollback["publish_s"], raw_back_s))
        print(row("  everything after the analysis", rollback["after_analysis_s"], raw_back_s))
    timed = [result for result in rounds if not result["profiled"]] or rounds
    plan_ratio = statistics.median(result["plan_publish_ratio"] for result in timed)
    rollback_ratio = statistics.median(result["rollback_ratio"] for result in timed)
    after_ratio = statistics.median(result["rollback_after_analysis_ratio"] for result in timed)
    print()
    print(f"plan + publish / raw: {plan_ratio:.2f}x (aim: <= 2x)")
    print(f"rollback / raw: {rollback_ratio:.2f}x (aim: <= 2x)")
    print(f"rollback after the analysis / raw: {after_ratio:.2f}x")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "bench": "rollout",
                "at": datetime.now(UTC).isoformat(),
                "devices": args.devices,
                "step_percent": args.step_percent,
                "messages": n,
                "cores": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": load_after,
                "setup": setup,
                "rounds": rounds,
                "plan_publish_ratio_median": plan_ratio,
                "rollback_ratio_median": rollback_ratio,
                "rollback_after_analysis_ratio_median": after_ratio,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()

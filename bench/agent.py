"""Throughput, latency and memory of the edge agent daemon.

Run with ``.venv/bin/python bench/agent.py`` (about a minute). It starts the real daemon
(``python -m edge_agent run``, MQTT off, a fixture model) pinned to one CPU core and
measures, in one run:

1. stream throughput: JSON lines written to the daemon's stdin, counted until its
   status says every one is scored (parse + features + TFLite + decision + outbox),
   next to raw TFLite invoke on pre-built feature vectors on the same core: the ratio
   is the figure that compares across machines;
2. decision latency of ``POST /v1/score`` under a steady offered load (default 2,000
   requests/s for 10 s) from a separate load-generator process on another core,
   measured from each request's scheduled send time (so queueing counts);
3. the daemon's peak resident memory (VmHWM) after both.

Aims: >= 20,000 transactions/s per core end to end, p99 < 5 ms at 2,000 requests/s,
peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from edge_agent.control_plane import Credentials  # noqa: E402
from edge_agent.features import N_FEATURES, FeatureExtractor  # noqa: E402
from edge_agent.inference import TFLiteModel  # noqa: E402
from edge_agent.simulator import Simulator, SimulatorConfig  # noqa: E402

MODEL = ROOT / "tests" / "edge_agent" / "fixtures" / "models" / "mlp-1"
PUBLIC_KEY = ROOT / "tests" / "edge_agent" / "fixtures" / "signing_key.pub.pem"
TRAFFIC = SimulatorConfig(seed=11, n_cards=40_000, n_stores=400, fraud_rate=0.02)


def _cores() -> tuple[int, int]:
    available = sorted(os.sched_getaffinity(0))
    return available[0], available[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(port: int) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=5).json()
    return body


def _start_agent(workdir: Path, port: int, core: int, max_batch: int) -> subprocess.Popen[bytes]:
    state = workdir / "state"
    Credentials(
        device_id=str(uuid.uuid4()),
        credential=SecretStr("bench"),
        control_plane_url="http://127.0.0.1:9",
        mqtt_host="127.0.0.1",
        mqtt_port=1,
        mqtt_tls=False,
        mqtt_username="bench",
        heartbeat_interval_seconds=3600,
        enrolled_at=datetime.now(UTC),
    ).save(state)
    config = workdir / "agent.toml"
    config.write_text(
        "\n".join(
            [
                f'state_dir = "{state}"',
                f'trusted_key_files = ["{PUBLIC_KEY}"]',
                f'bootstrap_model = "{MODEL}"',
                'log_level = "WARNING"',
                "telemetry_interval_seconds = 10",
                "[mqtt]",
                "enabled = false",
                "[http]",
                f"port = {port}",
                "[scoring]",
                f"max_batch = {max_batch}",
                "sample_rate = 0.01",
            ]
        )
        + "\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
    process = subprocess.Popen(
        [
            *("taskset", "-c", str(core), sys.executable, "-m", "edge_agent", "run"),
            *("--config", str(config), "--input", "-"),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stderr=(workdir / "agent.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _status(port).get("model_version"):
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError((workdir / "agent.log").read_text())


def _stream_throughput(process: subprocess.Popen[bytes], port: int, lines: bytes, n: int) -> float:
    """Transactions per second from the first byte written until all are scored."""
    assert process.stdin is not None
    stdin = process.stdin

    def write() -> None:
        stdin.write(lines)
        stdin.flush()

    writer = threading.Thread(target=write, daemon=True)
    started = time.perf_counter()
    writer.start()
    while True:
        scored = int(_status(port)["scored"])  # type: ignore[call-overload]
        if scored >= n:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    writer.join()
    return n / elapsed


def _raw_invoke(features: np.ndarray, max_batch: int, repeats: int = 3) -> float:
    model = TFLiteModel(MODEL.joinpath("model.tflite").read_bytes(), n_features=N_FEATURES)
    model.warm_up()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(features), max_batch):
            model.predict(features[start : start + max_batch])
        best = min(best, time.perf_counter() - started)
    return len(features) / best


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- load generator (a separate process) -----------------------------------------------


async def _connection(
    port: int,
    bodies: list[bytes],
    schedule: list[float],
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    for body, due in zip(bodies, schedule, strict=True):
        # Sleep until just before the due time, then yield until it: asyncio's timers
        # round to whole milliseconds, which would count against the agent.
        delay = due - loop.time() - 0.002
        if delay > 0:
            await asyncio.sleep(delay)
        while loop.time() < due:
            await asyncio.sleep(0)
        writer.write(
            b"POST /v1/score HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(loop.time() - due)
        if not head.startswith(b"HTTP/1.1 200"):
            errors.append(1)
    writer.close()


async def _load(
    port: int, rate: float, seconds: float, connections: int, lines: list[bytes]
) -> None:
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    start = loop.time() + 0.2
    latencies: list[float] = []
    errors: list[int] = []
    tasks = []
    for c in range(connections):
        indices = range(c, total, connections)
        tasks.append(
            _connection(
                port,
                [lines[i % len(lines)] for i in indices],
                [start + i / rate for i in indices],
                latencies,
                errors,
            )
        )
    await asyncio.gather(*tasks)
    values = np.array(latencies) * 1000.0
    print(
        json.dumps(
            {
                "requests": len(values),
                "errors": len(errors),
                "achieved_per_s": len(values) / (loop.time() - start),
                "p50_ms": float(np.percentile(values, 50)),
                "p99_ms": float(np.percentile(values, 99)),
                "max_ms": float(values.max()),
            }
        )
    )


def _loadgen_main(args: argparse.Namespace) -> None:
    # The default event loop: its timers are finer than uvloop's millisecond ticks.
    lines = Path(args.loadgen_lines).read_bytes().splitlines()
    asyncio.run(_load(args.loadgen_port, args.rate, args.seconds, args.connections, lines))


def _http_latency(
    port: int, core: int, lines_file: Path, args: argparse.Namespace
) -> dict[str, float]:
    result = subprocess.run(
        [
            *("taskset", "-c", str(core), sys.executable, __file__),
            *("--loadgen-port", str(port), "--loadgen-lines", str(lines_file)),
            *("--rate", str(args.rate), "--seconds", str(args.seconds)),
            *("--connections", str(args.connections)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=args.seconds * 10 + 60,
    )
    body: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200_000, help="stream transactions")
    parser.add_argument("--rate", type=float, default=2000.0, help="offered requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--loadgen-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--loadgen-lines", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen_port:
        _loadgen_main(args)
        return
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the agent to one core")

    agent_core, load_core = _cores()
    transactions = Simulator(TRAFFIC).generate(args.count)
    stream = b"".join(tx.model_dump_json().encode() + b"\n" for tx in transactions)
    features = FeatureExtractor().transform_many(transactions)
    # Requests use their own cards and stores so they do not disturb the stream's state.
    requests = Simulator(TRAFFIC.model_copy(update={"seed": 12})).generate(5000)

    workdir = Path(tempfile.mkdtemp(prefix="edgeplane-bench-agent-"))
    port = _free_port()
    process = _start_agent(workdir, port, agent_core, args.max_batch)
    try:
        e2e = _stream_throughput(process, port, stream, len(transactions))
        os.sched_setaffinity(0, {agent_core})
        raw = _raw_invoke(features, args.max_batch)
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) | {agent_core, load_core})
        lines_file = workdir / "requests.jsonl"
        lines_file.write_bytes(b"".join(tx.model_dump_json().encode() + b"\n" for tx in requests))
        latency = _http_latency(port, load_core, lines_file, args)
        status = _status(port)
        rss = _peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    outbox = status["outbox"]
    print(f"agent pinned to core {agent_core}; load generator on core {load_core}")
    print(f"stream, end to end       {e2e:>12,.0f} tx/s   ({len(transactions):,} transactions)")
    print(f"raw TFLite invoke        {raw:>12,.0f} tx/s   (batches of {args.max_batch})")
    print(f"end to end / raw invoke  {e2e / raw:>12.3f}")
    print(
        f"POST /v1/score at {args.rate:,.0f}/s  p50 {latency['p50_ms']:.2f} ms  "
        f"p99 {latency['p99_ms']:.2f} ms  max {latency['max_ms']:.2f} ms  "
        f"({latency['requests']:,.0f} requests, {latency['errors']:.0f} errors, "
        f"achieved {latency['achieved_per_s']:,.0f}/s)"
    )
    served = status["http"]
    print(
        f"  inside the agent (request in to response out): p50 {served['p50_ms']:.2f} ms  "  # type: ignore[index]
        f"p99 {served['p99_ms']:.2f} ms"  # type: ignore[index]
    )
    print(f"peak RSS of the daemon   {rss:>12.1f} MB")
    print(f"outbox after the run     {outbox}")


if __name__ == "__main__":
    main()

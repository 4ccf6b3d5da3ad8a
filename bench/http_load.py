"""HTTP benchmark of the service under gunicorn against a floor app (a benchmark, not a test).

(b) 2,000 sequential order-select calls with the standard request, service vs floor app under the
    same gunicorn settings (the shipped ones: threaded workers, keep-alive): medians, p99 and the
    service/floor ratio;
(c) throughput at concurrency 8 for 20 s with 2 workers: req/s, p99, errors;
(d) scale: prefetch with 100 / 1,000 / 10,000 Observations: median latency and growth ratio.
Loopback only. Writes bench/results/http.json and prints a summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "examples" / "order-select-request.json"
RESULTS = ROOT / "bench" / "results" / "http.json"
PATH = "/cds-services/lumbar-imaging-order-select"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(app: str, workers: int, env: dict[str, str]) -> Iterator[str]:
    """Run `app` under gunicorn on a free loopback port; yield its base URL."""
    port = _free_port()
    # The shipped server settings (cds_service/serve.sh): the threaded worker with its request
    # deadline, keep-alive, 64 threads; the floor app gets the very same, so the ratio is fair.
    command = [
        str(BIN / "gunicorn"),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--threads", "64",
        "--timeout", "60",
        "--config", "python:cds_service.observability.gunicorn_conf",
        app,
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 - fixed command, loopback only
        command, cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(process.stderr.read().decode()[-2000:])
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
        "min_ms": round(ordered[0], 3),
    }


def fresh_bodies(request: dict[str, Any]) -> Callable[[], bytes]:
    """Bodies of `request`, each with its own hookInstance, as real hook calls have.

    The audit keeps one row per hookInstance and order: one body sent again and again would
    update one row instead of inserting a row per call, and measure the wrong thing.
    """
    prefix, _, suffix = json.dumps({**request, "hookInstance": "@@"}).partition("@@")
    return lambda: f"{prefix}{uuid.uuid4()}{suffix}".encode()


def sequential(base: str, body: Callable[[], bytes] | list[bytes], count: int) -> dict[str, float]:
    """`count` calls one after another on one session (fresh bodies, or one body per call)."""
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    samples = []
    errors = 0
    bodies = body if isinstance(body, list) else [body() for _ in range(count)]
    for body in bodies[:count]:
        started = time.perf_counter()
        response = session.post(f"{base}{PATH}", data=body, headers=headers, timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        errors += response.status_code != 200
    return {**_stats(samples), "errors": errors}


def throughput(
    base: str, body: Callable[[], bytes], concurrency: int, seconds: float
) -> dict[str, float]:
    """Closed-loop load: `concurrency` clients for `seconds`; req/s, p99 and errors."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    samples: list[float] = []
    errors = [0]

    def client() -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                ok = session.post(f"{base}{PATH}", data=body(), headers=headers,
                                  timeout=30).status_code == 200  # fmt: skip
            except requests.RequestException:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                samples.append(elapsed)
                errors[0] += not ok

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {
        **_stats(samples),
        "concurrency": concurrency,
        "seconds": round(wall, 2),
        "requests_per_s": round(len(samples) / wall, 1),
        "errors": errors[0],
    }


def with_observations(request: dict[str, Any], count: int, run: int = 0) -> bytes:
    """The standard request with `count` body-temperature Observations in its prefetch.

    Each run gets its own resource ids, so no run is helped by resources a worker validated in
    an earlier one: the scale figures are the cold path.
    """
    scaled = copy.deepcopy(request)
    template = scaled["prefetch"]["observations"]["entry"][0]["resource"]
    entries = []
    for index in range(count):
        resource = copy.deepcopy(template)
        resource["id"] = f"scale-{run}-{index}"
        resource["valueQuantity"]["value"] = 36.5 + (index % 10) / 10
        entries.append({"resource": resource})
    scaled["prefetch"]["observations"]["entry"] = entries
    scaled["hookInstance"] = str(uuid.uuid4())  # a hook call of its own (one audit row each)
    return json.dumps(scaled).encode()


def main() -> int:
    """Run (b), (c) and (d) and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    request = json.loads(FIXTURE.read_text(encoding="utf-8"))
    body = fresh_bodies(request)
    results: dict[str, Any] = {"fixture": str(FIXTURE.relative_to(ROOT)), "workers": 2}
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            "CDS_ENV": "development",
            "CDS_LOG_LEVEL": "WARNING",
            "CDS_DATABASE_URL": f"sqlite:///{scratch}/bench.db",
        }
        subprocess.run(  # noqa: S603 - the project's own CLI
            [str(BIN / "cds-service"), "db", "upgrade"], cwd=ROOT, env={**os.environ, **env},
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        with gunicorn("bench.floor_app:create_app()", 2, env) as floor:
            results["floor_sequential"] = sequential(floor, body, args.calls)
        with gunicorn("cds_service:create_app()", 2, env) as service:
            results["service_sequential"] = sequential(service, body, args.calls)
            results["service_throughput"] = throughput(
                service, body, args.concurrency, args.seconds
            )
            scale = {}
            for count, runs in ((100, 30), (1000, 10), (10000, 5)):
                bodies = [with_observations(request, count, run) for run in range(runs)]
                scale[str(count)] = sequential(service, bodies, runs)
            results["scale_observations"] = scale
    service_median = results["service_sequential"]["median_ms"]
    floor_median = results["floor_sequential"]["median_ms"]
    results["service_floor_ratio"] = round(service_median / floor_median, 2)
    results["scale_growth_10000_vs_100"] = round(
        scale["10000"]["median_ms"] / scale["100"]["median_ms"], 1
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    seq, flo, thr = (results[k] for k in
                     ("service_sequential", "floor_sequential", "service_throughput"))  # fmt: skip
    print(f"(b) sequential {args.calls} calls: service median {seq['median_ms']} ms, "
          f"p99 {seq['p99_ms']} ms; floor median {flo['median_ms']} ms, p99 {flo['p99_ms']} ms; "
          f"ratio {results['service_floor_ratio']}; errors {seq['errors']}")  # fmt: skip
    print(
        f"(c) concurrency {thr['concurrency']} for {thr['seconds']} s: "
        f"{thr['requests_per_s']} req/s, p99 {thr['p99_ms']} ms, errors {thr['errors']}"
    )
    for count, stats in scale.items():
        print(f"(d) {count:>6} Observations: median {stats['median_ms']} ms ({stats['n']} runs)")
    print(f"    growth 10,000 vs 100: x{results['scale_growth_10000_vs_100']}")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

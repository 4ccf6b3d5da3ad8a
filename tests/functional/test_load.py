"""A bounded load test on loopback: 20,000 hook calls at concurrency 16, no error, no lost row."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select

from cds_service.audit.models import evaluation
from tests.support.hook_requests import SAMPLE, SELECT

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = int(os.environ.get("CDS_LOAD_REQUESTS", "20000"))
CONCURRENCY = 16
TIME_LIMIT_S = 600  # a bound, not a performance target: the benchmark measures speed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_load_has_no_errors_and_an_audit_row_per_evaluated_order(tmp_path: Path):
    port = _free_port()
    database = tmp_path / "load.db"
    env = {
        **os.environ,
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_WORKERS": "2",
        "CDS_ENV": "development",
        "CDS_AUTH": "off",
        "CDS_LOG_LEVEL": "ERROR",
        "CDS_DATABASE_URL": f"sqlite:///{database}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(  # noqa: S603 - the project's own CLI
        [str(Path(sys.executable).parent / "cds-service"), "db", "upgrade"],
        env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    server = subprocess.Popen(  # noqa: S603 - fixed script, test-controlled PATH
        ["sh", str(ROOT / "docker" / "entrypoint.sh")],  # noqa: S607
        cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    body = SAMPLE.read_bytes()
    json.loads(body)  # the shipped sample is the load
    statuses: dict[int, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    issued = iter(range(REQUESTS))
    started = time.monotonic()

    def worker() -> None:
        session = requests.Session()
        while time.monotonic() - started < TIME_LIMIT_S:
            with lock:
                if next(issued, None) is None:
                    return
            try:
                status = session.post(
                    f"{base}{SELECT}", data=body, timeout=30,
                    headers={"Content-Type": "application/json"},
                ).status_code  # fmt: skip
            except requests.RequestException as exc:
                with lock:
                    failures.append(type(exc).__name__)
                continue
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    assert failures == []
    assert statuses == {200: REQUESTS}
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(evaluation)).scalar_one()
        distinct = connection.execute(
            select(func.count(func.distinct(evaluation.c.consult_id)))
        ).scalar_one()
    engine.dispose()
    assert rows == distinct == REQUESTS  # the sample request has one lumbar order

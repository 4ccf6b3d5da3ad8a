"""A bounded load test on loopback: 20,000 hook calls at concurrency 16, no error, no lost row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select

from cds_service.audit.models import evaluation
from tests.support.hook_requests import SAMPLE, SELECT
from tests.support.live import entrypoint_server

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = int(os.environ.get("CDS_LOAD_REQUESTS", "20000"))
CONCURRENCY = 16
TIME_LIMIT_S = 600  # a bound, not a performance target: the benchmark measures speed


def test_load_has_no_errors_and_an_audit_row_per_evaluated_order(tmp_path: Path):
    database = tmp_path / "load.db"
    env = {
        "CDS_WORKERS": "2",
        "CDS_LOG_LEVEL": "ERROR",
        "CDS_DATABASE_URL": f"sqlite:///{database}",
    }
    subprocess.run(  # noqa: S603 - the project's own CLI
        [str(Path(sys.executable).parent / "cds-service"), "db", "upgrade"],
        env={**os.environ, **env}, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    sample = json.loads(SAMPLE.read_bytes())  # the shipped sample is the load
    # every hook call has its own hookInstance (the audit keeps one row per instance and order)
    prefix, _, suffix = json.dumps({**sample, "hookInstance": "@@"}).partition("@@")
    statuses: dict[int, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    issued = iter(range(REQUESTS))

    with entrypoint_server(env, stderr_path=tmp_path / "stderr.log") as base:
        started = time.monotonic()

        def worker() -> None:
            session = requests.Session()
            while time.monotonic() - started < TIME_LIMIT_S:
                with lock:
                    if next(issued, None) is None:
                        return
                try:
                    body = f"{prefix}{uuid.uuid4()}{suffix}".encode()
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

        threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

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

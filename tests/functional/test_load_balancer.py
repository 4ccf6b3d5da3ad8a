"""Three instances behind HAProxy, one PostgreSQL, one truth (issue 15).

A bounded load (3,000 signed hook calls at concurrency 16, and feedback on every tenth) runs
through HAProxy (deploy/haproxy/lumbar-cds.cfg) while one instance is SIGKILLed and started
again and the other two are restarted one after the other. No client call may fail (HAProxy
retries what a dying instance dropped; a retried call is one audit row), the audit holds
exactly one row per answered call, a jti used on one instance is refused by the others, and
every instance reports the same figures.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import create_engine, func, select

from cds_service.audit.models import evaluation, feedback
from cds_service.audit.spool import Spool
from tests.support.audit_db import postgres_schema
from tests.support.hook_requests import SAMPLE, SELECT
from tests.support.jwt_tokens import claims, jwks, new_key, sign
from tests.support.live import ROOT, ServiceProcess, free_port

CALLS = 3000
CONCURRENCY = 16
FEEDBACK_EVERY = 10
ISS = "https://ehr.example.org"
REPORT_TOKEN = "lb-test-report-token-" + "k" * 24
CONFIG = ROOT / "deploy" / "haproxy" / "lumbar-cds.cfg"


def _haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.environ.get("CDS_TEST_HAPROXY") == "1":
        pytest.fail("CDS_TEST_HAPROXY=1 but haproxy is not installed (apt-get install haproxy)")
    pytest.skip("haproxy not installed; set CDS_TEST_HAPROXY=1 to make this a failure")


def _database() -> str:
    url = os.environ.get("CDS_TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs CDS_TEST_DATABASE_URL: the instances share one PostgreSQL")
    return url


class Cluster:
    """HAProxy on a free port in front of three instances sharing one database."""

    def __init__(self, work: Path, database_url: str, jwks_url: str) -> None:
        issuers = work / "issuers.yaml"
        issuers.write_text(yaml.safe_dump({ISS: {"jwks_url": jwks_url}}), encoding="utf-8")
        self.lb_port = free_port()
        self.base = f"http://127.0.0.1:{self.lb_port}"
        self.database_url = database_url
        common = {
            "CDS_ENV": "test",
            "CDS_TRUSTED_ISSUERS": str(issuers),
            "CDS_PUBLIC_BASE_URL": self.base,  # the address clients call: each token's aud
            "CDS_DATABASE_URL": database_url,
            "CDS_PSEUDONYM_KEY": "lb-test-pseudonym-key-" + "p" * 24,
            "CDS_REPORT_TOKEN": REPORT_TOKEN,
            "CDS_LOG_LEVEL": "INFO",
            "CDS_DATABASE_AUTO_UPGRADE": "off",
            # Three instances, HAProxy, PostgreSQL and this load generator share two cores
            # here: within the default 0.3 s some audit writes would give up and spool, and
            # feedback for a card whose row waits in another instance's spool is refused
            # (422 unknown card), a limit the closing note of issue 15 records.
            "CDS_DATABASE_WAIT_SECONDS": "2",
        }
        self.instances = [
            ServiceProcess(
                free_port(),
                {**common, "CDS_AUDIT_SPOOL": str(work / f"spool-{n}.jsonl")},
                work / f"instance-{n}.log",
            )
            for n in (1, 2, 3)
        ]
        self.spools = [work / f"spool-{n}.jsonl" for n in (1, 2, 3)]
        self.haproxy_log = work / "haproxy.log"
        self.env = {
            **os.environ,
            "CDS_LB_BIND": f"127.0.0.1:{self.lb_port}",
            **{f"CDS_BACKEND_{n}": f"127.0.0.1:{i.port}" for n, i in enumerate(self.instances, 1)},
        }
        self.haproxy: subprocess.Popen[bytes] | None = None

    def migrate(self) -> None:
        """The migration Job's step: `cds-service db upgrade`, once, before any instance."""
        subprocess.run(
            [sys.executable, "-m", "cds_service.cli", "db", "upgrade"],
            env={**os.environ, "CDS_DATABASE_URL": self.database_url},
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        """Start the three instances, then HAProxy, and wait until it sees them all up."""
        for instance in self.instances:
            instance.start()
        with self.haproxy_log.open("wb") as log:
            self.haproxy = subprocess.Popen(  # noqa: S603 - the Debian package's binary
                [_haproxy(), "-db", "-f", str(CONFIG)], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    time.sleep(1.5)  # rise 2 × inter 500 ms: every server marked up
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError("haproxy did not start: " + self.haproxy_log.read_text()[-2000:])

    def stop(self) -> None:
        """Stop HAProxy and every instance gracefully."""
        if self.haproxy is not None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)
        for instance in self.instances:
            instance.stop()


@contextmanager
def jwks_server(directory: Path, key) -> Iterator[str]:
    """The EHR's JWKS, served by a process of its own (not this busy test process's GIL)."""
    (directory / "jwks.json").write_text(json.dumps(jwks(key)), encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - the standard library's static file server
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/jwks.json"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(url, timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, dict]]:
    _haproxy()
    base_url = _database()
    key = new_key("ES384", "lb-1")
    served = tmp_path / "jwks"
    served.mkdir()
    with jwks_server(served, key) as jwks_url, postgres_schema(base_url) as database_url:
        cluster = Cluster(tmp_path, database_url, jwks_url)
        cluster.migrate()
        try:
            cluster.start()
            yield cluster, {"key": key}
        finally:
            cluster.stop()


def _token(key, aud: str) -> str:
    return sign(key, "ES384", claims(ISS, aud))


def _counts(database_url: str) -> tuple[int, int, int]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(evaluation)).scalar_one()
            distinct = connection.execute(
                select(func.count(func.distinct(evaluation.c.hook_instance)))
            ).scalar_one()
            kept = connection.execute(select(func.count()).select_from(feedback)).scalar_one()
        return rows, distinct, kept
    finally:
        engine.dispose()


def test_three_instances_behind_haproxy_survive_a_kill_and_a_rolling_restart(cluster):
    cluster, keys = cluster
    key = keys["key"]
    sample = json.loads(SAMPLE.read_bytes())
    hook_url = cluster.base + SELECT
    feedback_url = hook_url + "/feedback"
    lock = threading.Lock()
    issued = itertools.count()
    chaos_done = threading.Event()
    answered: list[str] = []  # hookInstance of every call answered 200
    feedback_sent = 0
    failures: list[str] = []
    events: list[str] = []

    def load() -> None:
        nonlocal feedback_sent
        session = requests.Session()
        while True:
            with lock:
                n = next(issued)
            if n >= CALLS and chaos_done.is_set():
                return  # at least CALLS, and on until the last restart is over
            instance_id = str(uuid.uuid4())
            body = {**sample, "hookInstance": instance_id}
            try:
                response = session.post(
                    hook_url, json=body, timeout=30,
                    headers={"Authorization": f"Bearer {_token(key, hook_url)}"},
                )  # fmt: skip
            except requests.RequestException as exc:
                with lock:
                    failures.append(f"hook {type(exc).__name__}")
                continue
            if response.status_code != 200:
                with lock:
                    failures.append(f"hook {response.status_code} {response.text[:200]}")
                continue
            with lock:
                answered.append(instance_id)
            cards = response.json()["cards"]
            if n % FEEDBACK_EVERY or not cards:
                continue
            item = {
                "card": cards[0]["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": cards[0]["overrideReasons"][0]},
                "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            try:
                sent = session.post(
                    feedback_url, json={"feedback": [item]}, timeout=30,
                    headers={"Authorization": f"Bearer {_token(key, feedback_url)}"},
                )  # fmt: skip
            except requests.RequestException as exc:
                with lock:
                    failures.append(f"feedback {type(exc).__name__}")
                continue
            with lock:
                if sent.status_code == 200:
                    feedback_sent += 1
                else:
                    failures.append(f"feedback {sent.status_code} {sent.text[:200]}")

    def chaos() -> None:
        first, *others = cluster.instances
        while len(answered) < CALLS // 6:
            time.sleep(0.05)
        first.kill()
        events.append(f"SIGKILL at {len(answered)}")
        first.start()
        events.append(f"restarted at {len(answered)}")
        for instance in others:
            time.sleep(1.5)  # HAProxy sees the restarted one up again (rise 2 × 500 ms)
            instance.stop()
            events.append(f"stopped at {len(answered)}")
            instance.start()
            events.append(f"restarted at {len(answered)}")
        chaos_done.set()

    threads = [threading.Thread(target=load) for _ in range(CONCURRENCY)]
    chaos_thread = threading.Thread(target=chaos)
    started = time.monotonic()
    for thread in [*threads, chaos_thread]:
        thread.start()
    for thread in [*threads, chaos_thread]:
        thread.join(timeout=600)
    seconds = time.monotonic() - started
    print(  # the figures for the closing note (pytest -s)
        f"\nload balancer: {len(answered)} calls, {feedback_sent} feedback, "
        f"{len(failures)} failures, {seconds:.1f} s; events: {events}"
    )
    # No call fails, not even one whose instance was killed after making its answer and
    # before sending it: the token's retry binding is cleared only once an answer is sent.
    assert failures == [], sorted(set(failures))
    calls = len(answered)
    assert calls >= CALLS
    assert len(events) == 6 and events[0].startswith("SIGKILL")
    # Calls kept flowing through every kill, stop and restart.
    assert all(int(event.rsplit(" ", 1)[1]) < calls for event in events), events

    # A jti is used once in the whole deployment: the other instances refuse it.
    first, second, third = cluster.instances
    token = _token(key, hook_url)
    direct = {"Authorization": f"Bearer {token}"}
    replay_body = {**sample, "hookInstance": str(uuid.uuid4())}
    once = requests.post(first.base + SELECT, json=replay_body, headers=direct, timeout=10)
    assert once.status_code == 200
    for other in (second, third):
        again = requests.post(other.base + SELECT, json=replay_body, headers=direct, timeout=10)
        assert again.status_code == 401

    # Every instance gives the same report.
    today = datetime.now(UTC).date().isoformat()
    query = f"/reports/avoided-scans?from={today}&to={today}"
    auth = {"Authorization": f"Bearer {REPORT_TOKEN}"}
    reports = [requests.get(i.base + query, headers=auth, timeout=60) for i in cluster.instances]
    assert [r.status_code for r in reports] == [200, 200, 200]
    assert reports[0].json() == reports[1].json() == reports[2].json()
    assert reports[0].json()["evaluations"]["total"] == calls + 1

    cluster.stop()  # graceful: each instance replays what it spooled before it ends
    rows, distinct, kept = _counts(cluster.database_url)
    # one order per call, plus the replay probe
    assert rows == distinct == calls + 1
    assert kept == feedback_sent
    assert not any(Spool(path).pending() for path in cluster.spools)

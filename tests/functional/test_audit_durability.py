"""The hook answers while the audit database is down; spooled rows reach it once, on recovery."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from cds_service.app import create_app
from cds_service.audit import service as audit_service
from cds_service.audit.models import evaluation
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.spool import Spool
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from cds_service.config import Settings
from tests.support.audit_db import postgres_schema
from tests.support.audit_rows import evaluation_row
from tests.support.hook_requests import SELECT, sample_request
from tests.support.tcp_proxy import TcpProxy


def _count(url: str) -> tuple[int, int]:
    engine = create_engine(make_url(url).set(drivername=_driver(url)))
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(evaluation)).scalar_one()
            distinct = connection.execute(
                select(func.count(func.distinct(evaluation.c.consult_id)))
            ).scalar_one()
    finally:
        engine.dispose()
    return rows, distinct


def _driver(url: str) -> str:
    parsed = make_url(url)
    return "postgresql+psycopg" if parsed.get_backend_name() == "postgresql" else parsed.drivername


def _row(consult_id: str) -> EvaluationRow:
    return evaluation_row(consult_id, f"h-{consult_id}")  # each row its own hook call


def test_spool_replays_once_and_survives_a_torn_line(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    store.upgrade()
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([_row("00000000-0000-4000-8000-000000000001")])
    spool.append([_row("00000000-0000-4000-8000-000000000002")])
    with open(spool.path, "a", encoding="utf-8") as handle:
        handle.write('{"values": {"consult_id": ')  # a crash mid-append
    assert spool.replay(store) == 2
    assert not spool.pending()
    # Replaying rows that are already stored (an interrupted replay run again) adds nothing.
    spool.append([_row("00000000-0000-4000-8000-000000000001")])
    assert spool.replay(store) == 0
    store.engine.dispose()
    assert _count(url) == (2, 2)


def test_hook_answers_and_spools_when_the_database_cannot_be_written(tmp_path: Path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the database directory should be")
    settings = Settings(
        env="test",
        auth_enabled=False,
        database_url=f"sqlite:///{blocked / 'audit.db'}",
        audit_spool=tmp_path / "spool.jsonl",
    )
    client = create_app(settings).test_client()
    for _ in range(3):
        assert client.post(SELECT, json=sample_request()).status_code == 200
    lines = (tmp_path / "spool.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # Spooled rows are pseudonymous like the database's: no identifiers from the request.
    assert "sample-patient-1" not in "".join(lines)
    assert "Practitioner/gp-1" not in "".join(lines)


def test_cli_replays_the_spool(tmp_path: Path, monkeypatch, capsys):
    spool = tmp_path / "spool.jsonl"
    Spool(spool).append([_row("00000000-0000-4000-8000-00000000000a")])
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    monkeypatch.setenv("CDS_AUDIT_SPOOL", str(spool))
    assert main(["audit", "replay"]) == 0
    assert "1 audit rows replayed" in capsys.readouterr().out
    assert _count(url) == (1, 1)


@pytest.mark.skipif(
    not os.environ.get("CDS_TEST_DATABASE_URL"),
    reason="needs PostgreSQL: set CDS_TEST_DATABASE_URL (CI does)",
)
def test_database_unreachable_mid_run_loses_no_row(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(audit_service, "REPLAY_INTERVAL_S", 0.0)
    with postgres_schema(os.environ["CDS_TEST_DATABASE_URL"]) as direct_url:
        parsed = make_url(direct_url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432)).start()
        proxied = parsed.set(host="127.0.0.1", port=proxy.port)
        settings = Settings(
            env="test",
            auth_enabled=False,
            database_url=proxied.render_as_string(hide_password=False),
            audit_spool=tmp_path / "spool.jsonl",
        )
        app = create_app(settings)
        client = app.test_client()
        statuses = []
        try:
            for _ in range(5):
                statuses.append(client.post(SELECT, json=sample_request()).status_code)
            proxy.cut()
            for _ in range(7):
                statuses.append(client.post(SELECT, json=sample_request()).status_code)
            assert Spool(tmp_path / "spool.jsonl").pending()
            proxy.restore()
            for _ in range(3):
                statuses.append(client.post(SELECT, json=sample_request()).status_code)
            # The replay runs in the background, started by the first call the database took;
            # calls keep coming meanwhile, as they would (on a loaded machine the worker thread
            # the cut left blocked can take a while to come free, and until then calls spool).
            deadline = time.monotonic() + 20
            while Spool(tmp_path / "spool.jsonl").pending() and time.monotonic() < deadline:
                time.sleep(0.5)
                statuses.append(client.post(SELECT, json=sample_request()).status_code)
        finally:
            app.extensions["cds_audit"].store.engine.dispose()
            proxy.cut()
        assert len(statuses) >= 15
        assert statuses == [200] * len(statuses)
        assert not Spool(tmp_path / "spool.jsonl").pending()
        assert _count(direct_url) == (len(statuses), len(statuses))

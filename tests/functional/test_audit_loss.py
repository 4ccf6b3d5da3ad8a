"""Nothing lost silently: lost rows are counted, spooled rows are shown, /readyz says when rows
cannot be kept, a torn spool line loses only itself, and a retried call is one row."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from cds_service.app import create_app
from cds_service.audit.models import evaluation, feedback
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.spool import Spool
from cds_service.audit.store import AuditStore, alembic_config
from cds_service.config import Settings
from tests.conftest import ContractClient
from tests.functional.test_audit import table_rows
from tests.support.audit_rows import evaluation_row
from tests.support.hook_requests import SELECT, sample_request

FEEDBACK = f"{SELECT}/feedback"


def metric(client: FlaskClient, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when absent)."""
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _down_app(tmp_path: Path, spool: Path) -> FlaskClient:
    """An app whose database cannot be opened (a file where its directory should be)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    app = create_app(
        Settings(
            env="test",
            auth_enabled=False,
            database_url=f"sqlite:///{blocker / 'audit.db'}",
            audit_spool=spool,
        )
    )
    app.test_client_class = ContractClient
    return app.test_client()


def _row(consult_id: str, hook_instance: str = "h-1", ts_offset: int = 0) -> EvaluationRow:
    return evaluation_row(consult_id, hook_instance, ts_offset=ts_offset)


def test_rows_neither_stored_nor_spooled_are_counted_and_readyz_is_503(tmp_path: Path):
    client = _down_app(tmp_path, Path("/dev/full"))  # every write: no space left on device
    before = metric(client, "cds_audit_rows_lost_total", reason="spool-unwritable")
    for _ in range(3):
        assert client.post(SELECT, json=sample_request()).status_code == 200
    after = metric(client, "cds_audit_rows_lost_total", reason="spool-unwritable")
    assert after - before == 3
    ready = client.get("/readyz")
    assert ready.status_code == 503
    outcome = ready.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert "spool" in outcome["issue"][0]["diagnostics"]


def test_readyz_stays_ready_while_the_spool_keeps_the_rows(tmp_path: Path):
    client = _down_app(tmp_path, tmp_path / "spool.jsonl")
    assert client.post(SELECT, json=sample_request()).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_the_spooled_gauge_counts_rows_waiting_and_falls_to_zero_on_replay(tmp_path: Path):
    client = _down_app(tmp_path, tmp_path / "spool.jsonl")
    lost = metric(client, "cds_audit_rows_lost_total", reason="spool-unwritable")
    for _ in range(4):
        assert client.post(SELECT, json=sample_request()).status_code == 200
    assert metric(client, "cds_audit_rows_spooled") == 4
    assert metric(client, "cds_audit_rows_lost_total", reason="spool-unwritable") == lost
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'recovered.db'}")
    store.upgrade()
    assert Spool(tmp_path / "spool.jsonl").replay(store) == 4
    store.engine.dispose()
    assert metric(client, "cds_audit_rows_spooled") == 0


def test_a_torn_spool_line_loses_only_itself(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    store.upgrade()
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([_row("00000000-0000-4000-8000-000000000001", "h-1")])
    with open(spool.path, "ab") as handle:
        handle.write(b'5e1f0a2c {"values": {"consult_id": ')  # a crash mid-append
    # The next row comes straight after the torn one, as it would after a restart.
    spool.append([_row("00000000-0000-4000-8000-000000000002", "h-2")])
    spool.append([_row("00000000-0000-4000-8000-000000000003", "h-3")])
    lines = spool.path.read_bytes().splitlines()
    assert len(lines) == 4  # the torn line ended, each row on a line of its own
    # A row corrupted in place fails its checksum rather than going in wrong.
    corrupted = lines[3].replace(b'"mri"', b'"ct"')
    spool.path.write_bytes(b"\n".join([*lines[:3], corrupted]) + b"\n")
    app = create_app(Settings(env="test", auth_enabled=False, database_url=url))
    client = app.test_client()
    lost = metric(client, "cds_audit_rows_lost_total", reason="spool-unreadable")
    assert spool.replay(store) == 2
    store.engine.dispose()
    app.extensions["cds_audit"].store.engine.dispose()
    kept = sorted(r["consult_id"] for r in table_rows(url, evaluation))
    assert kept == [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
    ]
    assert metric(client, "cds_audit_rows_lost_total", reason="spool-unreadable") == lost + 2


def test_a_retried_hook_call_is_one_row_carrying_its_latest_card(audit_client, audit_url):
    request = sample_request()
    cards = []
    for _ in range(3):
        response = audit_client.post(SELECT, json=request, headers={"Accept-Language": "en"})
        assert response.status_code == 200
        cards.append(response.get_json()["cards"][0])
    rows = table_rows(audit_url, evaluation)
    assert len(rows) == 1
    assert rows[0]["card_uuid"] == cards[-1]["uuid"]  # the card the EHR shows now
    # Feedback on that card finds its row.
    item = {
        "card": cards[-1]["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": cards[-1]["overrideReasons"][1]},
        "outcomeTimestamp": "2026-01-05T10:00:00Z",
    }
    answer = audit_client.post(FEEDBACK, json={"feedback": [item]})
    assert answer.status_code == 200, answer.get_json()
    assert len(table_rows(audit_url, feedback)) == 1
    # Another call (a new hookInstance) is a row of its own.
    assert audit_client.post(SELECT, json=sample_request()).status_code == 200
    assert len(table_rows(audit_url, evaluation)) == 2


def test_a_spooled_copy_of_a_stored_row_is_not_a_second_row(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    store.upgrade()
    assert store.record([_row("00000000-0000-4000-8000-00000000000a", "h-9", ts_offset=5)]) == 1
    # The same call and order under another consult id (a retry), older: the stored row stays.
    assert store.record([_row("00000000-0000-4000-8000-00000000000b", "h-9")]) == 0
    # Newer: it replaces the stored row, which keeps its id.
    assert store.record([_row("00000000-0000-4000-8000-00000000000c", "h-9", ts_offset=9)]) == 1
    with store.engine.connect() as connection:
        stored = connection.execute(select(evaluation.c.id, evaluation.c.consult_id)).all()
    store.engine.dispose()
    assert [row.consult_id for row in stored] == ["00000000-0000-4000-8000-00000000000c"]


def test_the_migration_merges_rows_a_retried_call_stored_twice(audit_url):
    store = AuditStore.from_url(audit_url)
    config = alembic_config(store.engine)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")  # before one row per call and order
    first, retry = (
        _row("00000000-0000-4000-8000-0000000000d1", "h-d"),
        _row("00000000-0000-4000-8000-0000000000d2", "h-d", ts_offset=1000),
    )
    answered = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)
    with store.engine.begin() as connection:
        old_id = connection.execute(
            insert(evaluation).values(
                **first.values,
                response="overridden",
                override_code="patient-insists",
                responded_at=answered,
            )
        ).inserted_primary_key[0]
        new_id = connection.execute(insert(evaluation).values(**retry.values)).inserted_primary_key[
            0
        ]
        connection.execute(
            insert(feedback).values(
                evaluation_id=old_id,
                card_uuid=first.values["card_uuid"],
                outcome="overridden",
                response="overridden",
                override_code="patient-insists",
                outcome_at=answered,
                received_at=answered,
                digest="d" * 64,
            )
        )
    store.upgrade()
    store.engine.dispose()
    rows = table_rows(audit_url, evaluation)
    assert [(r["id"], r["consult_id"]) for r in rows] == [(new_id, retry.values["consult_id"])]
    assert rows[0]["response"] == "overridden"  # the retried row took the earlier response
    assert [f["evaluation_id"] for f in table_rows(audit_url, feedback)] == [new_id]


def test_a_stopping_worker_flushes_the_spool_into_the_database(tmp_path: Path):
    """Rows spooled in a burst are replayed when the worker stops (gunicorn's worker_exit)."""
    from types import SimpleNamespace

    from cds_service.observability import gunicorn_conf

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    spool = Spool(tmp_path / "spool.jsonl")
    consults = [f"00000000-0000-4000-8000-00000000001{n}" for n in range(3)]
    spool.append([_row(consult, f"h-{n}") for n, consult in enumerate(consults)])
    app = create_app(
        Settings(env="test", auth_enabled=False, database_url=url, audit_spool=spool.path)
    )
    gunicorn_conf.worker_exit(None, SimpleNamespace(wsgi=app))
    stored = {row["consult_id"] for row in table_rows(url, evaluation)}
    assert stored == set(consults)
    assert not spool.pending()
    app.extensions["cds_audit"].store.engine.dispose()

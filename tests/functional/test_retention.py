"""Retention (issue 15): `cds-service db purge` deletes what is older than the retention period,
with its feedback and suggestions, and expired jti rows — nothing younger — on SQLite and
PostgreSQL, in batches, and refuses a period too short for the reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from cds_service.audit.models import evaluation, feedback, suggestion
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.retention import purge
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from cds_service.config import ConfigError, load_settings
from cds_service.security.replay import jwt_replay
from tests.support.audit_rows import evaluation_row

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _row(days_ago: int, n: int) -> EvaluationRow:
    consult = str(uuid.UUID(int=days_ago * 1000 + n))
    suggestions = ((str(uuid.uuid4()), "cancel"), (str(uuid.uuid4()), "replace"))
    return evaluation_row(
        consult, consult, when=NOW - timedelta(days=days_ago), suggestions=suggestions
    )


@pytest.fixture
def store(audit_url: str):
    """An audit store with 5 rows 4,000 days old, 3 rows 3,600 days old and 2 of yesterday;
    each has two suggestions and one feedback row; jti rows: 2 expired, 1 live."""
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    rows = [_row(4000, n) for n in range(5)] + [_row(3600, n) for n in range(3)]
    rows += [_row(1, n) for n in range(2)]
    for row in rows:
        store.record([row])
    with store.engine.begin() as connection:
        ids = connection.execute(select(evaluation.c.id, evaluation.c.card_uuid)).all()
        for evaluation_id, card in ids:
            connection.execute(
                insert(feedback).values(
                    evaluation_id=evaluation_id,
                    card_uuid=card,
                    outcome="accepted",
                    response="cancelled",
                    outcome_at=NOW,
                    received_at=NOW,
                    digest=f"{evaluation_id:064d}",
                )
            )
        now_s = int(NOW.timestamp())
        for jti, expires in (
            ("old-1", now_s - 10),
            ("old-2", now_s - 99999),
            ("live", now_s + 10**8),
        ):
            connection.execute(
                insert(jwt_replay).values(jti=jti, iss="https://ehr", expires_at=expires)
            )
    yield store
    store.engine.dispose()


def _count(store: AuditStore, table) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def test_purge_deletes_only_what_is_past_the_retention_period(store):
    dry = purge(store.engine, 3653, now=NOW, dry_run=True)
    assert (dry.evaluations, dry.feedback, dry.suggestions, dry.replay_tokens) == (5, 5, 10, 2)
    assert _count(store, evaluation) == 10  # a dry run deletes nothing
    done = purge(store.engine, 3653, now=NOW, batch_rows=2)  # three batches: 2 + 2 + 1
    assert (done.evaluations, done.feedback, done.suggestions, done.replay_tokens) == (5, 5, 10, 2)
    assert done.cutoff == NOW - timedelta(days=3653)
    assert (_count(store, evaluation), _count(store, feedback), _count(store, suggestion)) == (
        5,
        5,
        10,
    )
    with store.engine.connect() as connection:
        oldest = connection.scalar(select(func.min(evaluation.c.ts)))
        assert [row.jti for row in connection.execute(select(jwt_replay.c.jti))] == ["live"]
    assert oldest == int((NOW - timedelta(days=3600)).timestamp() * 1000)
    again = purge(store.engine, 3653, now=NOW)
    assert (again.evaluations, again.replay_tokens) == (0, 0)  # idempotent


def test_the_command_uses_the_retention_setting(store, audit_url, monkeypatch, capsys):
    monkeypatch.setenv("CDS_AUDIT_RETENTION_DAYS", "3000")
    assert main(["db", "purge", "--dry-run", "--database-url", audit_url]) == 0
    assert "would delete 8 evaluations" in capsys.readouterr().out
    assert _count(store, evaluation) == 10
    assert main(["db", "purge", "--older-than-days", "3653", "--database-url", audit_url]) == 0
    out = capsys.readouterr().out
    assert "deleted 5 evaluations" in out and "2 expired jti rows" in out
    assert _count(store, evaluation) == 5


def test_a_retention_too_short_for_the_reports_is_refused(monkeypatch, capsys, tmp_path):
    with pytest.raises(ConfigError, match="CDS_AUDIT_RETENTION_DAYS"):
        load_settings({"CDS_AUDIT_RETENTION_DAYS": "30"})
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    assert main(["db", "purge", "--older-than-days", "30", "--database-url", url]) == 2
    assert "at least 400" in capsys.readouterr().err

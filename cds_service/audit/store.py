"""The audit store: engine, schema upgrades (Alembic), and the writes of rows and feedback."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from cds_service.audit.models import (
    MISSED_ALARM_DAYS,
    REASSURING,
    URGENT,
    evaluation,
    feedback,
    suggestion,
)
from cds_service.audit.recording import EvaluationRow
from cds_service.database import DatabaseTimeouts, make_engine
from cds_service.observability import metrics

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed number: PostgreSQL advisory lock held while migrating, so that several workers or
# hosts starting at once upgrade the schema one after the other.
_MIGRATION_LOCK = 7_245_310_011


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration pointing at the packaged migrations and this engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


class AuditStore:
    """Reads and writes the audit tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, timeouts: DatabaseTimeouts | None = None) -> AuditStore:
        """A store for a database URL (sqlite:///…, postgresql://…)."""
        return cls(make_engine(url, timeouts))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op when it already is)."""
        config = alembic_config(self.engine)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # A migration may wait for another worker's and build indexes on a large table:
                # the hook path's statement and lock timeouts are lifted for this transaction.
                connection.execute(text("SET LOCAL statement_timeout = 0"))
                connection.execute(text("SET LOCAL lock_timeout = 0"))
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def is_current(self) -> bool:
        """True when the schema is at the newest migration."""
        head = ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head

    def record(self, rows: Sequence[EvaluationRow]) -> int:
        """Store the rows of one hook call in one transaction; how many were written.

        A row whose hook call and order are already stored (the call retried, or a spooled
        copy replayed) replaces the stored one only when it is newer; the response recorded
        from feedback stays.
        """
        if not rows:
            return 0
        written = alarms = 0
        with self.engine.begin() as connection:
            for row in rows:
                alarms += _follows_reassurance(connection, row.values)
                new_id = _upsert(connection, row.values)
                if new_id is None:
                    continue  # the stored row is as new or newer
                written += 1
                # A retry answers with new card and suggestion uuids: the EHR shows those.
                connection.execute(delete(suggestion).where(suggestion.c.evaluation_id == new_id))
                if row.suggestions:
                    connection.execute(
                        insert(suggestion),
                        [
                            {"uuid": uuid, "evaluation_id": new_id, "kind": kind}
                            for uuid, kind in row.suggestions
                        ],
                    )
        # Counted once committed: a failed write (spooled, replayed later) counts on replay.
        metrics.MISSED_ALARMS.inc(alarms)
        return written

    def cards(self, service_id: str, card_uuids: Iterable[str]) -> dict[str, int]:
        """Evaluation id by card uuid, for the cards of this service that are known."""
        wanted = sorted(set(card_uuids))
        if not wanted:
            return {}
        query = select(evaluation.c.card_uuid, evaluation.c.id).where(
            evaluation.c.service_id == service_id, evaluation.c.card_uuid.in_(wanted)
        )
        with self.engine.connect() as connection:
            return {uuid: eid for uuid, eid in connection.execute(query)}

    def suggestions(self, evaluation_ids: Iterable[int]) -> dict[str, tuple[int, str]]:
        """(evaluation id, kind) by suggestion uuid for the given evaluations."""
        ids = sorted(set(evaluation_ids))
        if not ids:
            return {}
        query = select(suggestion.c.uuid, suggestion.c.evaluation_id, suggestion.c.kind).where(
            suggestion.c.evaluation_id.in_(ids)
        )
        with self.engine.connect() as connection:
            return {uuid: (eid, kind) for uuid, eid, kind in connection.execute(query)}

    def record_feedback(self, items: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Store validated feedback rows atomically; (stored, duplicates).

        Each item holds the audit_feedback columns. A digest already stored (a repeated
        message) is skipped. The evaluation row keeps the response with the latest outcome time.
        """
        for attempt in (1, 2):
            try:
                return self._store_feedback(items)
            except IntegrityError:
                # Another request stored the same message between our check and our insert.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _store_feedback(self, items: Sequence[dict[str, Any]]) -> tuple[int, int]:
        unique = {item["digest"]: item for item in items}
        with self.engine.begin() as connection:
            seen = set(
                connection.scalars(
                    select(feedback.c.digest).where(feedback.c.digest.in_(sorted(unique)))
                )
            )
            new = [item for digest, item in unique.items() if digest not in seen]
            if new:
                connection.execute(insert(feedback), new)
            for item in new:
                row = evaluation.c
                connection.execute(
                    update(evaluation)
                    .where(
                        row.id == item["evaluation_id"],
                        (row.responded_at.is_(None)) | (row.responded_at <= item["outcome_at"]),
                    )
                    .values(
                        response=item["response"],
                        override_system=item["override_system"],
                        override_code=item["override_code"],
                        responded_at=item["outcome_at"],
                    )
                )
        return len(new), len(items) - len(new)


# The call and order a row belongs to (unique since migration 0004), and the columns a newer
# copy of the row may change: everything but its key, its id and the feedback response.
CALL_ORDER = ("hook_instance", "hook", "order_ref")
_KEPT = {"id", "response", "override_system", "override_code", "responded_at", *CALL_ORDER}
_REFRESHED = tuple(c.name for c in evaluation.columns if c.name not in _KEPT)


def _follows_reassurance(connection: Connection, values: dict[str, Any]) -> bool:
    """True when `values` is a new urgent row whose patient had a reassuring evaluation
    (not-indicated, insufficient-data) in the MISSED_ALARM_DAYS before it.

    Two index lookups, only for urgent rows (a few percent): the call and order (a retried
    call or a replayed copy is no new alarm) and (decision, patient, ts).
    """
    if values.get("decision") != URGENT:
        return False
    row = evaluation.c
    stored = select(row.id).where(*(row[name] == values[name] for name in CALL_ORDER)).limit(1)
    if connection.execute(stored).first() is not None:
        return False
    earlier = (
        select(row.id)
        .where(
            row.decision.in_(REASSURING),
            row.patient == values["patient"],
            row.ts < values["ts"],
            row.ts >= values["ts"] - MISSED_ALARM_DAYS * 86_400_000,
        )
        .limit(1)
    )
    return connection.execute(earlier).first() is not None


def _upsert(connection: Connection, values: dict[str, Any]) -> int | None:
    """Insert the row, or update the stored row of its call and order when this one is newer;
    the row's id, or None when the stored row was kept."""
    dialect = connection.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        key = connection.execute(insert(evaluation).values(**values)).inserted_primary_key
        return None if key is None else int(key[0])
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    row = make(evaluation).values(**values)
    upsert = row.on_conflict_do_update(
        index_elements=list(CALL_ORDER),
        set_={name: row.excluded[name] for name in _REFRESHED},
        where=evaluation.c.ts < row.excluded.ts,
    ).returning(evaluation.c.id)
    stored: int | None = connection.execute(upsert).scalar_one_or_none()
    return stored

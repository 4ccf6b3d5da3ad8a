"""The audit store: engine, schema upgrades (Alembic), and the writes of rows and feedback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from cds_service.audit.models import evaluation, feedback, suggestion
from cds_service.audit.recording import EvaluationRow

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed number: PostgreSQL advisory lock held while migrating, so that several workers or
# hosts starting at once upgrade the schema one after the other.
_MIGRATION_LOCK = 7_245_310_011


def make_engine(url: str) -> Engine:
    """An engine for CDS_DATABASE_URL; SQLite files get WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, future=True)
    if parsed.database and parsed.database != ":memory:":
        # Best effort: if the directory cannot be made, connecting fails later and is logged.
        with contextlib.suppress(OSError):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, future=True, connect_args={"timeout": 10})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


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
    def from_url(cls, url: str) -> AuditStore:
        """A store for a database URL (sqlite:///…, postgresql://…)."""
        return cls(make_engine(url))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op when it already is)."""
        config = alembic_config(self.engine)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def is_current(self) -> bool:
        """True when the schema is at the newest migration."""
        head = ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head

    def record(self, rows: Sequence[EvaluationRow]) -> None:
        """Store the rows of one hook call in one transaction."""
        if not rows:
            return
        with self.engine.begin() as connection:
            for row in rows:
                new_id = connection.execute(
                    insert(evaluation).values(**row.values)
                ).inserted_primary_key[0]
                if row.suggestions:
                    connection.execute(
                        insert(suggestion),
                        [
                            {"uuid": uuid, "evaluation_id": new_id, "kind": kind}
                            for uuid, kind in row.suggestions
                        ],
                    )

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

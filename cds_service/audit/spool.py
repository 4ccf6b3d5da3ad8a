"""A local append-only spool for audit rows the database could not take, replayed on recovery.

Rows are JSON lines (already pseudonymised: the spool holds exactly what the database would).
An exclusive file lock serialises appends and replays across threads and gunicorn workers;
replay skips rows whose consult id is already stored, so a replay interrupted half-way, or run
twice, never duplicates a row.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cds_service.audit.models import evaluation
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.store import AuditStore

log = logging.getLogger(__name__)
_DATETIME = "$datetime"
BATCH = 500


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {_DATETIME: v.isoformat()} if isinstance(v, datetime) else v for k, v in values.items()
    }


def _decode(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: datetime.fromisoformat(v[_DATETIME]) if isinstance(v, dict) and _DATETIME in v else v
        for k, v in values.items()
    }


class Spool:
    """The spool file of one deployment (CDS_AUDIT_SPOOL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self, mode: str) -> Iterator[Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, mode, encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, rows: Sequence[EvaluationRow]) -> None:
        """Add rows durably (flushed and fsynced before returning)."""
        if not rows:
            return
        lines = "".join(
            json.dumps({"values": _encode(r.values), "suggestions": r.suggestions}) + "\n"
            for r in rows
        )
        with self._locked("a") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> bool:
        """True when the spool holds rows not yet replayed."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def replay(self, store: AuditStore) -> int:
        """Move spooled rows into the store; return how many were inserted (duplicates skipped).

        The file is emptied only after every row is stored; on a failure it keeps its rows and
        the exception propagates, so the next replay starts again safely.
        """
        if not self.pending():
            return 0
        with self._locked("r+") as handle:
            rows = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    rows.append(
                        EvaluationRow(
                            _decode(item["values"]),
                            tuple(tuple(s) for s in item.get("suggestions") or ()),
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    # A torn last line (crash mid-append) cannot be recovered; say so and go on.
                    log.error("audit spool line unreadable", extra={"line": number})
            inserted = 0
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                ids = [r.values["consult_id"] for r in batch]
                with store.engine.connect() as connection:
                    known = set(
                        connection.execute(
                            select(evaluation.c.consult_id).where(evaluation.c.consult_id.in_(ids))
                        ).scalars()
                    )
                fresh = [r for r in batch if r.values["consult_id"] not in known]
                store.record(fresh)
                inserted += len(fresh)
            handle.seek(0)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        if inserted:
            log.warning("audit spool replayed", extra={"rows": inserted})
        return inserted

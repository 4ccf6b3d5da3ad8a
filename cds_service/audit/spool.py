"""A local append-only spool for audit rows the database could not take, replayed on recovery.

Rows are lines of JSON (already pseudonymised: the spool holds exactly what the database
would), each framed by its CRC-32: `<8 hex digits> <json>\\n`. An append first ends a torn last
line (a crash mid-write), so a torn line loses only itself, never the row written after it.
An exclusive file lock serialises appends across threads and gunicorn workers. A replay moves
the spool aside (`<spool>.replaying`) under that lock and writes to the database without it,
so appends never wait for the database; the moved file is deleted only once every row is
stored, and rows already stored (a replay interrupted half-way, or run twice) are skipped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from cds_service.audit.models import evaluation
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.store import AuditStore
from cds_service.observability import metrics

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


def frame(row: EvaluationRow) -> bytes:
    """One spool line: the row's JSON behind its CRC-32."""
    payload = json.dumps({"values": _encode(row.values), "suggestions": row.suggestions})
    data = payload.encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(data), data)


def unframe(line: bytes) -> EvaluationRow:
    """The row of one spool line; ValueError when the line is torn or corrupt."""
    line = line.rstrip(b"\n")
    if line.startswith(b"{"):  # written before lines were framed: plain JSON
        data = line
    else:
        crc, _, data = line.partition(b" ")
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(data):
            raise ValueError("spool line fails its checksum")
    try:
        item = json.loads(data)
        return EvaluationRow(
            _decode(item["values"]), tuple(tuple(s) for s in item.get("suggestions") or ())
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError("spool line is not an audit row") from exc


class Spool:
    """The spool file of one deployment (CDS_AUDIT_SPOOL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.moved = self.path.with_name(self.path.name + ".replaying")
        self._lockfile = self.path.with_name(self.path.name + ".lock")
        self._known: tuple[int, int, int] | None = None  # (inode, size, rows) after our append

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        """The spool file opened for appending and reading, under the exclusive lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+b")  # closed below, which also releases the lock
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                # A replay may have moved the file between our open and our lock: writing to
                # the moved file would put the row where nobody reads it any more.
                try:
                    same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield handle
                    return
            finally:
                handle.close()  # closing releases the lock

    def append(self, rows: Sequence[EvaluationRow]) -> None:
        """Add rows durably (flushed and fsynced before returning)."""
        if not rows:
            return
        data = b"".join(frame(r) for r in rows)
        with self._locked() as handle:
            size = handle.seek(0, os.SEEK_END)
            inode = os.fstat(handle.fileno()).st_ino
            before = self._rows_in(handle, inode, size)
            if size:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    data = b"\n" + data  # end the torn line: it loses only itself
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            self._known = (inode, size + len(data), before + len(rows))
        metrics.AUDIT_ROWS_SPOOLED.set(before + len(rows) + self._count(self.moved))

    def _rows_in(self, handle: IO[bytes], inode: int, size: int) -> int:
        if not size:  # empty, or a device (/dev/full reads zeros without end)
            return 0
        if self._known is not None and self._known[:2] == (inode, size):
            return self._known[2]
        handle.seek(0)
        return sum(1 for line in handle if line.strip())

    @staticmethod
    def _count(path: Path) -> int:
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                return 0  # a device (/dev/full reads zeros without end)
            with open(path, "rb") as handle:
                return sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            return 0

    def rows(self) -> int:
        """How many rows wait in the spool (counting lines, torn ones included)."""
        return self._count(self.path) + self._count(self.moved)

    def probe(self) -> None:
        """Write an empty line durably; OSError when the spool cannot be written (disk full)."""
        with self._locked() as handle:
            handle.write(b"\n")  # skipped by replay, and keeps a torn line ended
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> bool:
        """True when the spool holds rows not yet replayed."""
        try:
            return self.path.stat().st_size > 0 or self.moved.exists()
        except FileNotFoundError:
            return self.moved.exists()

    @contextmanager
    def _replaying(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lockfile, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def replay(self, store: AuditStore) -> int:
        """Move spooled rows into the store; return how many were inserted (duplicates skipped).

        The moved file is deleted only after every row is stored; on a failure it stays and
        the exception propagates, so the next replay starts again safely.
        """
        if not self.pending():
            return 0
        inserted = 0
        with self._replaying():
            for _ in range(2):  # a file left by a failed replay first, then the current spool
                if not self.moved.exists() and not self._move_aside():
                    break
                inserted += self._replay_file(store)
                self.moved.unlink()
        metrics.AUDIT_ROWS_SPOOLED.set(self.rows())
        if inserted:
            log.warning("audit spool replayed", extra={"rows": inserted})
        return inserted

    def _move_aside(self) -> bool:
        try:
            with self._locked() as handle:
                if not handle.seek(0, os.SEEK_END):
                    return False
                os.replace(self.path, self.moved)
                self._known = None
                return True
        except FileNotFoundError:
            return False

    def _replay_file(self, store: AuditStore) -> int:
        rows, unreadable = [], 0
        with open(self.moved, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(unframe(line))
                except ValueError:
                    # A torn line (crash mid-append) or a corrupt one cannot be recovered: it
                    # is counted as lost, and the rows around it are kept.
                    unreadable += 1
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
            inserted += store.record(fresh)
        # Counted once the file is done with, so a replay that fails and runs again does not
        # count the same lost line twice.
        metrics.AUDIT_ROWS_LOST.labels("spool-unreadable").inc(unreadable)
        return inserted

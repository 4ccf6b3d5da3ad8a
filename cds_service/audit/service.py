"""The audit as the running app sees it: a store opened once, and writes that never fail a hook."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cds_service.audit.bounded import DatabaseGate, DatabaseStalled, run_within_call
from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser, safe_token
from cds_service.audit.recording import EvaluationRow, evaluation_rows
from cds_service.audit.spool import Spool
from cds_service.audit.store import AuditStore, DatabaseTimeouts, abort_connections
from cds_service.config import Settings
from cds_service.evaluation import Evaluation
from cds_service.observability import metrics
from cds_service.rules.knowledge import Knowledge

log = logging.getLogger(__name__)
T = TypeVar("T")
REPLAY_INTERVAL_S = 10.0
# A readiness probe may wait longer than a hook call: it is nobody's answer, and a database
# that is merely slow should not be reported as gone.
READINESS_WAIT_S = 1.0


def spool_path(settings: Settings) -> Path:
    """Where rows wait when the database is down: CDS_AUDIT_SPOOL, else beside the SQLite file."""
    if settings.audit_spool is not None:
        return Path(settings.audit_spool)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_suffix(".spool.jsonl")
    return Path("var") / "audit-spool.jsonl"  # var/ of the directory the service starts in


class Audit:
    """Audit store, pseudonymiser and settings of one app.

    The schema is brought up to date on first use (when CDS_DATABASE_AUTO_UPGRADE is on), so
    an app that never writes never touches the database.
    """

    def __init__(self, settings: Settings, knowledge: Knowledge) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.store = AuditStore.from_url(settings.database_url, timeouts_of(settings))
        engine = self.store.engine
        self.gate = DatabaseGate(abort=lambda: abort_connections(engine))
        key = settings.pseudonym_key or (DEVELOPMENT_KEY if settings.is_development else "")
        self.pseudonym = Pseudonymiser(key) if key else None
        self._ready = not settings.database_auto_upgrade
        self._lock = threading.Lock()
        self.spool = Spool(spool_path(settings))
        self._spool_failed = False
        self._next_replay = 0.0
        try:
            metrics.AUDIT_ROWS_SPOOLED.set(self.spool.rows())
        except OSError:
            metrics.AUDIT_ROWS_SPOOLED.set(0)

    def ready_store(self) -> AuditStore:
        """The store, its schema upgraded once per process when auto-upgrade is on.

        A hook call waits for the upgrade no longer than for a write; an upgrade that takes
        longer goes on in the background (its connection is not shut down) while rows spool.
        """
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.store.upgrade()
                    self._ready = True
        return self.store

    def within_call(self, work: Callable[[], T]) -> T:
        """`work` within the hook call's database wait, the schema brought up to date first.

        DatabaseStalled past the wait. A migration overrunning it is left to finish: shutting
        its connection down would only undo it, again at every call.
        """
        wait = self.settings.database_wait_seconds
        if not self._ready:
            run_within_call(self.gate, self.ready_store, wait, abort=False)
        return run_within_call(self.gate, work, wait)

    def record_call(
        self,
        service_id: str,
        request: Mapping[str, Any],
        result: Evaluation,
        latency_ms: int,
        *,
        tenant: str | None = None,
        tenant_listed: bool = False,
    ) -> bool:
        """Store the audit rows of one hook call; False (and a log line) when that failed.

        Never raises, and waits for the database at most what is left of the call's
        CDS_DATABASE_WAIT_SECONDS: past that, or on any store error, the rows are spooled. The
        log line names the error type only, never the request's content. `tenant_listed` says
        the tenant is one the trusted-issuers file lists for the token's issuer.
        """
        if not result.orders:
            return True
        rows: Sequence[EvaluationRow] = ()
        try:
            if self.pseudonym is None:
                raise RuntimeError("no pseudonym key configured")
            rows = evaluation_rows(
                request,
                result,
                service_id=service_id,
                tenant=self._tenant(self.pseudonym, tenant, tenant_listed),
                pseudonym=self.pseudonym,
                knowledge=self.knowledge,
                latency_ms=latency_ms,
                mode=self.settings.mode,
            )
        except Exception as exc:  # the hook must answer whatever the rows' making does
            metrics.AUDIT_ROWS_LOST.labels("unrecordable").inc(len(result.orders))
            log.error(
                "audit rows could not be made; the hook answered without them",
                extra={"service": service_id, "error": type(exc).__name__},
            )
            return False
        try:
            self.within_call(lambda: self.store.record(rows))
        except Exception as exc:  # the hook must answer whatever the store does
            spooled = self._spool(rows)
            log.error(
                "audit write failed; the hook answered and the rows were spooled"
                if spooled
                else "audit write failed; the hook answered without an audit row",
                extra={"service": service_id, "error": type(exc).__name__, "rows": len(rows)},
            )
            return False
        self.replay_if_due()
        return True

    def _tenant(self, pseudonym: Pseudonymiser, claim: str | None, listed: bool) -> str:
        """The tenant to store: the configured or listed name, else the claim's pseudonym."""
        # The verified JWT's tenant claim wins over the configured default. Names the operator
        # configured are kept; any other claim could be an identifier (a practice's AGB code,
        # a person's name), so it is pseudonymised, however token-like it looks.
        if not claim:
            return self.settings.tenant
        if (listed or claim == self.settings.tenant) and safe_token(claim):
            return claim
        return pseudonym("tenant", claim)

    def _spool(self, rows: Sequence[EvaluationRow]) -> bool:
        if not rows:
            return False
        try:
            self.spool.append(rows)
        except OSError as exc:
            self._spool_failed = True
            metrics.AUDIT_ROWS_LOST.labels("spool-unwritable").inc(len(rows))
            log.critical(
                "audit spool write failed; audit rows lost",
                extra={"error": type(exc).__name__, "rows": len(rows)},
            )
            return False
        self._spool_failed = False
        return True

    def replay_if_due(self) -> bool:
        """Start replaying spooled rows in the background (at most every 10 s); True if started.

        No hook call waits for it: the replay runs on the database gate's own thread.
        """
        if time.monotonic() < self._next_replay or not self.spool.pending():
            return False
        self._next_replay = time.monotonic() + REPLAY_INTERVAL_S
        return self.gate.run_in_background(self._replay)

    def flush_spool(self, wait: float) -> int:
        """Replay what the spool holds now, waiting at most `wait` seconds; rows replayed.

        For a worker that stops: rows spooled during a burst are otherwise replayed only after
        the next successful write, which a stopping worker will not make.
        """
        if not self.spool.pending():
            return 0
        try:
            return self.gate.run(self._replay, wait, abort=False, patient=True)
        except Exception as exc:  # the spool keeps the rows for the next start
            log.error("audit spool flush failed", extra={"error": type(exc).__name__})
            return 0

    def _replay(self) -> int:
        try:
            return self.spool.replay(self.ready_store())
        except Exception as exc:  # a failed replay keeps the spool for the next attempt
            log.error("audit spool replay failed", extra={"error": type(exc).__name__})
            return 0

    def readiness(self) -> str | None:
        """None while audit rows can be kept (the database answers or the spool takes them).

        Otherwise why not. A spool that failed a write is probed with an empty line, so that
        an instance whose disk has room again becomes ready without a hook call.
        """
        try:
            self.gate.run(self._ping, READINESS_WAIT_S)
            return None
        except Exception as exc:  # any failure means "not there", never a 500
            database_error = type(exc).__name__
        try:
            if self._spool_failed:
                self.spool.probe()
                self._spool_failed = False
            else:
                self.spool.path.parent.mkdir(parents=True, exist_ok=True)
                open(self.spool.path, "ab").close()
        except OSError as exc:
            self._spool_failed = True
            log.warning(
                "audit rows cannot be kept: database and spool both fail",
                extra={"error": database_error, "spool_error": type(exc).__name__},
            )
            return "the audit database cannot be reached and the audit spool cannot be written"
        log.warning(
            "audit database unreachable; rows go to the spool", extra={"error": database_error}
        )
        return None

    def _ping(self) -> None:
        with self.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def timeouts_of(settings: Settings) -> DatabaseTimeouts:
    """The database timeouts the settings ask for."""
    return DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_ms=settings.database_statement_timeout_ms,
        lock_ms=settings.database_lock_timeout_ms,
        sqlite_busy_ms=settings.sqlite_busy_timeout_ms,
    )


def database_call(work: Callable[[], T], fallback: Callable[[], T]) -> T:
    """`work` within the current hook call's database wait, else `fallback()` (no app: direct)."""
    if not has_app_context() or "cds_audit" not in current_app.extensions:
        return work()
    audit: Audit = current_app.extensions["cds_audit"]
    try:
        return audit.within_call(work)
    except DatabaseStalled:
        return fallback()


def init_audit(app: Flask, settings: Settings, knowledge: Knowledge) -> Audit:
    """Attach an Audit to the app."""
    audit = Audit(settings, knowledge)
    app.extensions["cds_audit"] = audit
    return audit


def current_audit() -> Audit:
    """The Audit of the current Flask app."""
    return current_app.extensions["cds_audit"]

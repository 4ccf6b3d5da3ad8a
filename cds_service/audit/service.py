"""The audit as the running app sees it: a store opened once, and writes that never fail a hook."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy.engine import make_url

from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser, safe_token
from cds_service.audit.recording import EvaluationRow, evaluation_rows
from cds_service.audit.spool import Spool
from cds_service.audit.store import AuditStore
from cds_service.config import PROJECT_ROOT, Settings
from cds_service.evaluation import Evaluation
from cds_service.rules.knowledge import Knowledge

log = logging.getLogger(__name__)
REPLAY_INTERVAL_S = 10.0


def spool_path(settings: Settings) -> Path:
    """Where rows wait when the database is down: CDS_AUDIT_SPOOL, else beside the SQLite file."""
    if settings.audit_spool is not None:
        return Path(settings.audit_spool)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_suffix(".spool.jsonl")
    return PROJECT_ROOT / "var" / "audit-spool.jsonl"


class Audit:
    """Audit store, pseudonymiser and settings of one app.

    The schema is brought up to date on first use (when CDS_DATABASE_AUTO_UPGRADE is on), so
    an app that never writes never touches the database.
    """

    def __init__(self, settings: Settings, knowledge: Knowledge) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.store = AuditStore.from_url(settings.database_url)
        key = settings.pseudonym_key or (DEVELOPMENT_KEY if settings.is_development else "")
        self.pseudonym = Pseudonymiser(key) if key else None
        self._ready = not settings.database_auto_upgrade
        self._lock = threading.Lock()
        self.spool = Spool(spool_path(settings))
        self._replay_lock = threading.Lock()
        self._next_replay = 0.0

    def ready_store(self) -> AuditStore:
        """The store, its schema upgraded once per process when auto-upgrade is on."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.store.upgrade()
                    self._ready = True
        return self.store

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

        Never raises: the clinician gets the answer even when the audit store is down. The
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
            )
            self.ready_store().record(rows)
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
            log.critical("audit spool write failed", extra={"error": type(exc).__name__})
            return False
        return True

    def replay_if_due(self) -> int:
        """Replay spooled rows once the database takes writes again (at most every 10 s)."""
        if not self.spool.pending() or time.monotonic() < self._next_replay:
            return 0
        if not self._replay_lock.acquire(blocking=False):
            return 0
        try:
            self._next_replay = time.monotonic() + REPLAY_INTERVAL_S
            return self.spool.replay(self.ready_store())
        except Exception as exc:  # a failed replay keeps the spool for the next attempt
            log.error("audit spool replay failed", extra={"error": type(exc).__name__})
            return 0
        finally:
            self._replay_lock.release()


def init_audit(app: Flask, settings: Settings, knowledge: Knowledge) -> Audit:
    """Attach an Audit to the app."""
    audit = Audit(settings, knowledge)
    app.extensions["cds_audit"] = audit
    return audit


def current_audit() -> Audit:
    """The Audit of the current Flask app."""
    return current_app.extensions["cds_audit"]

"""The audit as the running app sees it: a store opened once, and writes that never fail a hook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser
from cds_service.audit.recording import evaluation_rows
from cds_service.audit.store import AuditStore
from cds_service.config import Settings
from cds_service.evaluation import Evaluation
from cds_service.rules.knowledge import Knowledge

log = logging.getLogger(__name__)


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

    def ready_store(self) -> AuditStore:
        """The store, its schema upgraded once per process when auto-upgrade is on."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.store.upgrade()
                    self._ready = True
        return self.store

    def record_call(
        self, service_id: str, request: Mapping[str, Any], result: Evaluation, latency_ms: int
    ) -> bool:
        """Store the audit rows of one hook call; False (and a log line) when that failed.

        Never raises: the clinician gets the answer even when the audit store is down. The
        log line names the error type only, never the request's content.
        """
        if not result.orders:
            return True
        try:
            if self.pseudonym is None:
                raise RuntimeError("no pseudonym key configured")
            rows = evaluation_rows(
                request,
                result,
                service_id=service_id,
                tenant=self.settings.tenant,
                pseudonym=self.pseudonym,
                knowledge=self.knowledge,
                latency_ms=latency_ms,
            )
            self.ready_store().record(rows)
        except Exception as exc:  # the hook must answer whatever the store does
            log.error(
                "audit write failed; the hook answered without an audit row",
                extra={"service": service_id, "error": type(exc).__name__},
            )
            return False
        return True


def init_audit(app: Flask, settings: Settings, knowledge: Knowledge) -> Audit:
    """Attach an Audit to the app."""
    audit = Audit(settings, knowledge)
    app.extensions["cds_audit"] = audit
    return audit


def current_audit() -> Audit:
    """The Audit of the current Flask app."""
    return current_app.extensions["cds_audit"]

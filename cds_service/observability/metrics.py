"""Prometheus metrics: request latency, decisions by kind, FHIR fetch errors, audit loss.

Single-process by default (each process exposes its own counts). Under gunicorn with several
workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory writable by the workers before the
service starts: prometheus_client then keeps the values in files there and `/metrics` adds up
all workers (cds_service/observability/gunicorn_conf.py, the gunicorn configuration of
cds_service/serve.sh, clears the directory at start and tidies up after each worker).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import requests
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from requests.adapters import HTTPAdapter

from cds_service.rules.model import Modality, Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_LATENCY = Histogram(
    "cds_http_request_duration_seconds",
    "Time from request to response, by route template, method and status code.",
    ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DECISIONS = Counter(
    "cds_decisions",
    "Decisions on lumbar imaging orders, by hook, outcome and modality.",
    ["hook", "outcome", "modality"],
)
FHIR_FETCH_ERRORS = Counter(
    "cds_fhir_fetch_errors",
    "Failed HTTP calls to a FHIR server, by kind: timeout, connection, server-error "
    "(5xx, 429), auth (401, 403), redirect, rejected (other 4xx), other.",
    ["kind"],
)
AUDIT_ROWS_LOST = Counter(
    "cds_audit_rows_lost",
    "Audit rows of answered hook calls that were neither stored nor spooled, by reason: "
    "spool-unwritable (database and spool both failed), spool-unreadable (a torn or corrupt "
    "spool line found on replay), unrecordable (the rows could not be built).",
    ["reason"],
)
AUDIT_LOSS_REASONS = ("spool-unwritable", "spool-unreadable", "unrecordable")
# The spool is one file shared by all workers: the value last set by any live worker is the
# file's, so multiprocess mode keeps the most recent one rather than a sum.
AUDIT_ROWS_SPOOLED = Gauge(
    "cds_audit_rows_spooled",
    "Audit rows waiting in the spool for the database to take them.",
    multiprocess_mode="livemostrecent",
)
# Incremented by the audit store when it first stores an urgent evaluation of a patient who had
# a not-indicated or insufficient-data one in the 90 days before: the prompt to open the
# missed-alarm list of the report (cds_service/audit/reports/figures.py) for clinical review.
MISSED_ALARMS = Counter(
    "cds_missed_alarms",
    "Urgent evaluations stored for a patient with a not-indicated or insufficient-data "
    "evaluation in the 90 days before (missed-alarm watch; the report lists them).",
)
FHIR_ERROR_KINDS = (
    "timeout",
    "connection",
    "server-error",
    "auth",
    "redirect",
    "rejected",
    "other",
)

for _hook in ("order-select", "order-sign"):
    for _outcome in Outcome:
        for _modality in Modality:
            DECISIONS.labels(_hook, _outcome.value, _modality.value)
for _kind in FHIR_ERROR_KINDS:
    FHIR_FETCH_ERRORS.labels(_kind)
for _reason in AUDIT_LOSS_REASONS:
    AUDIT_ROWS_LOST.labels(_reason)


def count_decisions(hook: str, decisions: Iterable[tuple[Any, Any]]) -> None:
    """Count (outcome, modality) pairs of one hook call."""
    for outcome, modality in decisions:
        DECISIONS.labels(hook, str(getattr(outcome, "value", outcome)), str(modality.value)).inc()


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """Record one served request."""
    REQUEST_LATENCY.labels(endpoint, method, str(status)).observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text (all workers' values in multiprocess mode) and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE


def _status_kind(status: int) -> str | None:
    if status in (401, 403):
        return "auth"
    if status == 429 or status >= 500:
        return "server-error"
    if 300 <= status < 400:
        return "redirect"
    if 400 <= status < 500 and status not in (404, 410):
        return "rejected"
    return None


class MeteredAdapter(HTTPAdapter):
    """An HTTPAdapter that counts failed FHIR calls in FHIR_FETCH_ERRORS (and changes nothing)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().send(request, *args, **kwargs)
        except requests.Timeout:
            FHIR_FETCH_ERRORS.labels("timeout").inc()
            raise
        except requests.ConnectionError:
            FHIR_FETCH_ERRORS.labels("connection").inc()
            raise
        except requests.RequestException:
            FHIR_FETCH_ERRORS.labels("other").inc()
            raise
        kind = _status_kind(response.status_code)
        if kind is not None:
            FHIR_FETCH_ERRORS.labels(kind).inc()
        return response


def metered_session(session: requests.Session) -> requests.Session:
    """`session` with its http(s) adapters replaced by counting ones of the same pool sizes."""
    for prefix in ("http://", "https://"):
        current = session.get_adapter(prefix)
        if isinstance(current, MeteredAdapter):
            continue
        pool_connections = getattr(current, "_pool_connections", 10)
        pool_maxsize = getattr(current, "_pool_maxsize", 10)
        max_retries = getattr(current, "max_retries", 0)
        session.mount(
            prefix,
            MeteredAdapter(
                pool_connections=pool_connections,
                pool_maxsize=pool_maxsize,
                max_retries=max_retries,
            ),
        )
    return session

"""Per-request hygiene (request id, security headers, one log line, latency metric) and the
/readyz and /metrics endpoints."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Blueprint, Flask, Response, current_app, g, request

from cds_service.config import Settings
from cds_service.errors import Issue, operation_outcome
from cds_service.hooks.discovery import SERVICES
from cds_service.http_json import json_response
from cds_service.observability import metrics
from cds_service.observability.logs import UUID_PATTERN

log = logging.getLogger(__name__)
access_log = logging.getLogger("cds_service.access")
bp = Blueprint("observability", __name__)

REQUEST_ID_HEADER = "X-Request-ID"
# JSON and everything else without a policy of its own: nothing may load, frame or submit.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# HTML pages without a policy of their own (the report): inline styles and data: images only.
HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # A client's id is kept only when it is a UUID, so it can carry nothing else into the logs.
    g.log_request_id = incoming if UUID_PATTERN.fullmatch(incoming) else str(uuid.uuid4())
    service_id = (request.view_args or {}).get("service_id")
    if service_id in SERVICES:
        g.log_service = service_id


def _finish(response: Response) -> Response:
    _security_headers(response, current_app.extensions["cds_observability"])
    request_id = g.get("log_request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("started")
    if started is None:  # a before_request handler ahead of ours answered
        return response
    seconds = time.perf_counter() - started
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    access_log.log(
        logging.WARNING if response.status_code >= 500 else logging.INFO,
        "request served",
        extra={
            "method": request.method,
            "endpoint": endpoint,
            "status": response.status_code,
            "latency_ms": round(seconds * 1000, 2),
        },
    )
    return response


def _security_headers(response: Response, settings: Settings) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    csp = headers.get("Content-Security-Policy")
    if csp is None:
        headers["Content-Security-Policy"] = (
            HTML_CSP if response.mimetype == "text/html" else API_CSP
        )
    elif "frame-ancestors" not in csp:
        headers["Content-Security-Policy"] = f"{csp.rstrip('; ')}; frame-ancestors 'none'"
    if settings.public_base_url.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: audit rows can be kept (the database answers, or the spool takes them)."""
    problem = current_app.extensions["cds_audit"].readiness()
    if problem is not None:
        return json_response(operation_outcome([Issue("transient", problem)]), 503)
    return json_response({"status": "ready"})


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text exposition."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


def init_observability(app: Flask, settings: Settings) -> None:
    """Install the request hooks (ahead of every other before_request) and the endpoints."""
    app.extensions["cds_observability"] = settings
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.register_blueprint(bp)

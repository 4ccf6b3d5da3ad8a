"""GET /reports/avoided-scans[.html] behind CDS_REPORT_TOKEN, and /reports/mirror[.html] (one
clinician's mirror report) behind the report token or that clinician's own token."""

from __future__ import annotations

import hmac
import logging
from datetime import date

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.reports.figures import ALARMS_SHOWN, GROUPINGS, AlarmPage, Period
from cds_service.audit.reports.locale import LANGUAGES, pick_language
from cds_service.audit.reports.run import build_mirror, build_report, clinician_pseudonym
from cds_service.audit.reports.tokens import is_mirror_token
from cds_service.audit.service import current_audit
from cds_service.errors import CdsError, InvalidRequest, StoreUnavailable, TooManyAttempts
from cds_service.security.throttle import FailureThrottle

MOST_ALARMS = 10_000  # missed-alarm pairs one page may list

bp = Blueprint("reports", __name__, url_prefix="/reports")
log = logging.getLogger(__name__)


class Unauthorised(CdsError):
    """No or a wrong bearer token for the reports."""

    status = 401
    issue_code = "login"


def _throttle() -> FailureThrottle:
    # One per app (so per worker process): a guesser gets FAILURES_ALLOWED tries a minute per
    # address and worker, which against a long random token is no chance at all.
    return current_app.extensions.setdefault("report_token_throttle", FailureThrottle())


def _check_token(clinician: str | None = None) -> None:
    """The report token, or (for `clinician`'s mirror report) that clinician's own token."""
    expected = current_audit().settings.report_token
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected:
        raise Unauthorised("reports are disabled: CDS_REPORT_TOKEN is not set")
    client = request.remote_addr or "unknown"
    throttle = _throttle()
    wait = throttle.retry_after(client)
    if wait is not None:
        # Refused before the token is even compared, so a right guess now tells nothing.
        log.warning("report token refused: too many failures", extra={"reason": "throttled"})
        raise TooManyAttempts(
            f"too many failed report tokens from this address: try again in {wait} s",
            retry_after=wait,
            expression="Authorization",
        )
    presented = _header_bytes(token.strip())
    accepted = hmac.compare_digest(presented, expected.encode("utf-8"))
    if clinician is not None:
        accepted = is_mirror_token(expected, clinician, presented) or accepted
    if scheme.lower() != "bearer" or not accepted:
        throttle.record_failure(client)
        raise Unauthorised("a valid bearer token is required", expression="Authorization")


def _header_bytes(value: str) -> bytes:
    """The bytes the client sent: WSGI hands a header over as latin-1 text."""
    # Compared as bytes because compare_digest refuses str with non-ASCII characters (a
    # TypeError, so a 500); text that cannot come from WSGI matches no token.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return b""


def _date(name: str) -> date:
    raw = request.args.get(name)
    if not raw:
        raise InvalidRequest(f"{name}: required (YYYY-MM-DD)", expression=name)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: not a date (YYYY-MM-DD)", expression=name) from exc


def _period() -> Period:
    try:
        return Period(_date("from"), _date("to"))
    except ValueError as exc:
        raise InvalidRequest(f"to: {exc}", expression="to") from exc


def _language() -> str:
    """?lang= first, then the Accept-Language header, then CDS_DEFAULT_LANGUAGE."""
    asked = request.args.get("lang")
    if asked is not None:
        if asked not in LANGUAGES:
            raise InvalidRequest(f"lang: must be one of {', '.join(LANGUAGES)}", expression="lang")
        return asked
    default = current_audit().settings.default_language
    return pick_language(request.headers.get("Accept-Language"), default)


def _answer(text: str, mimetype: str, language: str) -> Response:
    response = Response(text, mimetype=mimetype)
    response.headers["Content-Language"] = language
    response.vary.add("Accept-Language")
    return response


def _count(name: str, default: int, most: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) > most:
        raise InvalidRequest(f"{name}: a whole number from 0 to {most}", expression=name)
    return int(raw)


def _report(fmt: str, mimetype: str) -> Response:
    _check_token()
    by = request.args.get("by") or None
    if by is not None and by not in GROUPINGS:
        raise InvalidRequest(f"by: must be one of {', '.join(GROUPINGS)}", expression="by")
    period, language = _period(), _language()
    # The missed-alarm list is paged, so that a national store's list costs one page.
    alarms = AlarmPage(
        _count("alarms_offset", 0, 10**9), _count("alarms_limit", ALARMS_SHOWN, MOST_ALARMS)
    )
    audit = current_audit()
    try:
        # "auto": the rollups once `cds-service report refresh` has run; never refreshed here.
        _, text = build_report(
            audit.ready_store().engine,
            audit.settings,
            period,
            by=by,
            fmt=fmt,
            language=language,
            alarms=alarms,
        )
    except SQLAlchemyError as exc:
        log.error("report failed: audit store error", extra={"error": type(exc).__name__})
        raise StoreUnavailable("the audit store is unavailable") from exc
    return _answer(text, mimetype, language)


def _mirror(fmt: str, mimetype: str) -> Response:
    identifier = request.args.get("clinician") or ""
    if not identifier or len(identifier) > 256:
        raise InvalidRequest(
            "clinician: required, the practitioner's context.userId (at most 256 characters)",
            expression="clinician",
        )
    audit = current_audit()
    try:
        clinician = clinician_pseudonym(audit.settings, identifier)
    except ValueError as exc:
        raise Unauthorised("mirror reports need CDS_PSEUDONYM_KEY") from exc
    _check_token(clinician)
    period, language = _period(), _language()
    try:
        engine, settings = audit.ready_store().engine, audit.settings
        _, text = build_mirror(engine, settings, period, clinician, fmt=fmt, language=language)
    except SQLAlchemyError as exc:
        log.error("mirror report failed: audit store error", extra={"error": type(exc).__name__})
        raise StoreUnavailable("the audit store is unavailable") from exc
    return _answer(text, mimetype, language)


@bp.errorhandler(Unauthorised)
def _unauthorised(error: Unauthorised) -> Response:
    from cds_service.http_json import json_response

    response = json_response(error.to_operation_outcome(), error.status)
    response.headers["WWW-Authenticate"] = 'Bearer realm="reports"'
    return response


@bp.errorhandler(TooManyAttempts)
def _throttled(error: TooManyAttempts) -> Response:
    from cds_service.http_json import json_response

    response = json_response(error.to_operation_outcome(), error.status)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.get("/avoided-scans")
def avoided_scans() -> Response:
    """The avoided-scans figures as JSON."""
    return _report("json", "application/json")


@bp.get("/avoided-scans.html")
def avoided_scans_html() -> Response:
    """The avoided-scans report as a self-contained HTML page with inline SVG charts."""
    return _report("html", "text/html")


@bp.get("/mirror")
def mirror() -> Response:
    """One clinician's mirror report (own figures beside the peers' median and IQR) as JSON."""
    return _mirror("json", "application/json")


@bp.get("/mirror.html")
def mirror_html() -> Response:
    """One clinician's mirror report as a self-contained HTML page with its chart."""
    return _mirror("html", "text/html")

"""The Flask application factory: settings, knowledge, blueprints, CORS and error handlers."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cds_service.audit.feedback import bp as feedback_bp
from cds_service.audit.reports.routes import bp as reports_bp
from cds_service.audit.service import init_audit
from cds_service.cards.patient_page import bp as patient_page_bp
from cds_service.cards.render import load_catalogue
from cds_service.config import Settings, load_settings
from cds_service.errors import CdsError, Issue, PayloadTooLarge, operation_outcome
from cds_service.fhir.client import default_session
from cds_service.hooks.routes import bp as hooks_bp
from cds_service.hooks.routes import json_response
from cds_service.observability.logs import configure_logging
from cds_service.observability.metrics import metered_session
from cds_service.observability.web import init_observability
from cds_service.openapi_document import served_document
from cds_service.rules.knowledge import load_knowledge
from cds_service.runtime import Runtime
from cds_service.security import init_auth
from cds_service.shipped import OPENAPI_DOCUMENT

log = logging.getLogger(__name__)
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the service; settings default to the CDS_* environment variables."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)  # JSON lines with a privacy guard (observability/)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_request_bytes, JSON_SORT_KEYS=False)
    # Loaded once at start-up so a broken mapping or card file stops the service, not a request.
    app.extensions["cds_runtime"] = Runtime(
        settings=settings,
        knowledge=load_knowledge(Path(settings.mappings_dir)),
        catalogue=load_catalogue(Path(settings.cards_dir)),
        # The FHIR client's pooled session (no proxy variables, no ~/.netrc credentials in place
        # of the bearer token), counting FHIR fetch errors for /metrics.
        fhir_session=metered_session(default_session()),
    )
    CORS(
        app,
        resources={r"/*": {"origins": "*"}},
        allow_headers=["Authorization", "Content-Type", "Accept", "Accept-Language"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    init_auth(app, settings)  # JWT bearer tokens on /cds-services (cds_service/security/)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(patient_page_bp)
    if settings.is_development:
        # The card gallery for clinical review (/dev/cards): development and test, never
        # production, where it would be an unauthenticated page nobody needs.
        from cds_service.cards.gallery import bp as card_gallery_bp

        app.register_blueprint(card_gallery_bp)
    init_audit(app, settings, app.extensions["cds_runtime"].knowledge)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(reports_bp)
    _register_error_handlers(app)
    # Request ids, security headers, JSON request log, latency metric, /readyz and /metrics.
    init_observability(app, settings)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    @app.get("/openapi.yaml")
    def openapi() -> Response:
        """The OpenAPI 3.1 description of this service."""
        # Self-contained (the schemas bundled in) and naming this deployment's address.
        body = served_document(OPENAPI_DOCUMENT, settings.public_base_url)
        return Response(body, mimetype="application/yaml")

    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CdsError)
    def cds_error(error: CdsError) -> Response:
        return json_response(error.to_operation_outcome(), error.status)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"]
        error = PayloadTooLarge(f"request body exceeds {limit} bytes", expression="$")
        return json_response(error.to_operation_outcome(), error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        issue = Issue(HTTP_ISSUE_CODES.get(status, "processing"), error.description or error.name)
        response = json_response(operation_outcome([issue]), status)
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # The trace stays in the server log; the client learns only that it was our fault.
        log.exception("unhandled error", exc_info=error)
        issue = Issue("exception", "internal error; the incident was logged")
        return json_response(operation_outcome([issue]), 500)

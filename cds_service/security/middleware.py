"""The JWT check in front of every CDS Hooks call: discovery, service calls and feedback.

Everything under /cds-services needs `Authorization: Bearer <JWT>` from a trusted issuer whose
`aud` is the exact URL called (under CDS_PUBLIC_BASE_URL). A refused call gets 401 with a
minimal OperationOutcome and `WWW-Authenticate: Bearer`, nothing more; the reason goes to the
server log at INFO as a short fixed code (`aud-mismatch`, `expired`, ...), never the token.
CORS preflight and the other endpoints (health, metrics, OpenAPI, patient page; reports have
their own token) are not checked here.
"""

from __future__ import annotations

import hashlib
import logging
import time

from flask import Flask, Response, current_app, g, request
from sqlalchemy import Engine

from cds_service.config import Settings
from cds_service.errors import ConfigError
from cds_service.http_json import json_response
from cds_service.security.issuers import TrustedIssuer, load_trusted_issuers
from cds_service.security.jwks import JwksCache
from cds_service.security.replay import ReplayCache
from cds_service.security.tokens import AuthFailure, verify_token

log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/cds-services"
UNAUTHORIZED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login"}],
}


class Authenticator:
    """Trusted issuers, their keys and the replay cache of one app."""

    def __init__(self, settings: Settings, issuers: dict[str, TrustedIssuer]) -> None:
        self.settings = settings
        self.issuers = issuers
        self.jwks = JwksCache()
        self.replay = ReplayCache(_audit_engine)

    def answered(self, response: Response) -> Response:
        """after_request: once the answer is sent, the call's token can no longer be retried."""
        seen = g.pop("cds_token_seen", None)
        if seen is not None:
            # Cleared when the server closes the response, after its bytes are written, not
            # when the answer is made: an instance killed in between leaves the binding, so
            # the balancer's retry of this very request is served elsewhere instead of refused
            # as a replay. The request context is gone by then; the app context is not.
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            response.call_on_close(lambda: self._answer_sent(app, seen))
        return response

    def _answer_sent(self, app: Flask, seen: tuple[str, str]) -> None:
        with app.app_context():
            self.replay.answered(*seen)

    def check(self) -> Response | None:
        """before_request: None lets the call through, a response refuses it."""
        path = request.path
        if request.method == "OPTIONS" or not (
            path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")
        ):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _refuse("no-bearer-token")
        try:
            verified = verify_token(
                token,
                audience=self.settings.public_base_url + path,
                issuers=self.issuers,
                jwks=self.jwks,
                leeway=self.settings.jwt_leeway_seconds,
                now=time.time(),
            )
        except AuthFailure as failure:
            return _refuse(failure.code)
        expires_at = verified.exp + self.settings.jwt_leeway_seconds
        digest = _request_digest(verified.jti)
        if not self.replay.first_use(verified.iss, verified.jti, expires_at, digest):
            return _refuse("replayed-jti")
        g.cds_token_seen = (verified.iss, verified.jti)
        g.cds_client_iss = verified.iss
        g.cds_tenant = verified.tenant  # the token's tenant claim (None without one)
        g.cds_tenant_listed = verified.tenant_listed
        return None


def _request_digest(jti: str) -> str | None:
    """A keyed digest of this request (method, path, body), binding the token to it.

    Keyed with the pseudonym key, so the replay table holds nothing that could be matched
    against a guessed request; None (no retry allowed) when no key is configured.
    """
    pseudonym = getattr(current_app.extensions.get("cds_audit"), "pseudonym", None)
    if pseudonym is None:
        return None
    # The body is read (and kept for the route) within the request size limit.
    body = hashlib.sha256(request.get_data(cache=True)).hexdigest()
    return pseudonym("jwt-request", f"{jti}\x1f{request.method}\x1f{request.path}\x1f{body}")


def _audit_engine() -> Engine:
    """The audit store's engine, its schema (with jwt_replay) brought up to date."""
    return current_app.extensions["cds_audit"].ready_store().engine


def _refuse(code: str) -> Response:
    # A fixed code in a checked field: the message's details (an issuer, a kid, the audience)
    # are the client's words, which the log formatter would withhold, telling an operator
    # nothing; the code says which check failed and carries nothing the client chose.
    # The route template, never the path as sent: a path can carry whatever the client put
    # in it (a name, a BSN), and the template says as much to an operator.
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    log.info("authentication refused", extra={"reason": code, "endpoint": endpoint})
    response = json_response(UNAUTHORIZED, 401)
    response.headers["WWW-Authenticate"] = "Bearer"
    response.headers["Cache-Control"] = "no-store"
    return response


def init_auth(app: Flask, settings: Settings) -> Authenticator | None:
    """Check every CDS Hooks call of this app, unless authentication is off (development)."""
    if not settings.auth_enabled:
        # load_settings allows this only in development; tests build their Settings directly.
        log.warning(
            "AUTHENTICATION IS OFF: any client may call the CDS services "
            "(CDS_ENV=%s; set CDS_TRUSTED_ISSUERS to turn it on)",
            settings.env,
        )
        app.extensions["cds_auth"] = None
        return None
    if settings.trusted_issuers_path is None:
        raise ConfigError(
            "CDS_TRUSTED_ISSUERS is required while authentication is on "
            "(tests building Settings directly pass auth_enabled=False)"
        )
    auth = Authenticator(
        settings, load_trusted_issuers(settings.trusted_issuers_path, env=settings.env)
    )
    app.extensions["cds_auth"] = auth
    app.before_request(auth.check)
    app.after_request(auth.answered)
    return auth

"""Verification of one CDS client JWT (CDS Hooks 2.0, Security; best practices, "JWT").

Order of checks: shape and header (alg, typ, kid) -> issuer on the trusted list -> key by kid
(from the issuer's JWKS — a `jku` naming its JWKS URL included — inline keys by kid whatever the
`jku`, or a `jku` on its allow-list) -> signature -> claims. Nothing about the
token is trusted before its signature is verified except the choice of issuer and key, and
those only select among keys the configuration already trusts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from cds_service.security.issuers import TrustedIssuer
from cds_service.security.jwks import JwksCache, keys_by_kid
from cds_service.security.replay import MAX_ID_LENGTH

# Asymmetric only: `none` and HMAC (HS*) are refused, as the specification demands.
ALGORITHMS = ("ES384", "RS384", "ES256", "RS256")
MAX_TOKEN_BYTES = 8 * 1024
# A token is for one call; one valid longer than this is refused, whatever its exp says,
# so a leaked token is useless after at most an hour (and the jti store stays small).
MAX_LIFETIME_SECONDS = 3600


class AuthFailure(Exception):
    """The token is not acceptable; the reason is for the server log, never for the client.

    `code` is a short fixed word (`aud-mismatch`, `expired`, ...) that the log may carry as it
    is; the message may hold client-chosen values (an issuer, a kid), so it is not logged.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What the service uses of an accepted token."""

    iss: str
    jti: str
    exp: int
    tenant: str | None
    tenant_listed: bool = False  # the tenant is on the issuer's configured `tenants` list


def verify_token(
    token: str,
    *,
    audience: str,
    issuers: Mapping[str, TrustedIssuer],
    jwks: JwksCache,
    leeway: int,
    now: float,
) -> VerifiedToken:
    """Check a compact JWS JWT for this endpoint; AuthFailure says why it is refused."""
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthFailure("token-too-large", "token too large")
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        unverified = json.loads(compact.payload or b"")
    except (JoseError, ValueError, TypeError) as exc:
        raise AuthFailure("malformed-token", f"malformed token ({type(exc).__name__})") from exc
    header = compact.protected
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthFailure("alg-not-accepted", f"algorithm {str(alg)[:16]!r} not accepted")
    if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
        raise AuthFailure("typ-not-jwt", "header typ is not JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthFailure("no-kid", "header has no kid")
    if "crit" in header:
        raise AuthFailure("crit-header", "header has critical extensions")
    iss = unverified.get("iss") if isinstance(unverified, dict) else None
    issuer = issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise AuthFailure("issuer-not-trusted", f"issuer {str(iss)[:100]!r} not trusted")
    key = _key(issuer, header, kid, jwks)
    key_alg = getattr(key, "alg", None)
    if key_alg and key_alg != alg:
        raise AuthFailure(
            "key-alg-mismatch", f"key {kid[:64]!r} is for {key_alg}, token says {alg}"
        )
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise AuthFailure("bad-signature", f"signature not valid ({type(exc).__name__})") from exc
    return _check_claims(claims, issuer, audience=audience, leeway=leeway, now=now)


def _key(issuer: TrustedIssuer, header: Mapping[str, Any], kid: str, jwks: JwksCache) -> Any:
    jku = header.get("jku")
    if jku is not None and not isinstance(jku, str):
        raise AuthFailure("jku-not-allowed", "jku is not a URL string")
    if jku is not None and issuer.jwks is not None:
        # Inline keys are looked up by kid whatever the jku says: nothing is fetched, so the
        # token chooses no server (the CDS Hooks Sandbox always sends a jku).
        key = keys_by_kid(issuer.jwks).get(kid)
    elif jku is not None:
        # Only URLs configured for this issuer are fetched: a token never chooses a server.
        # Its own JWKS URL counts as configured (the Sandbox names it in every token's jku).
        if jku not in issuer.jku and jku != issuer.jwks_url:
            raise AuthFailure("jku-not-allowed", "jku not on the issuer's allow-list")
        key = jwks.key(jku, kid)
    elif issuer.jwks is not None:
        key = keys_by_kid(issuer.jwks).get(kid)
    elif issuer.jwks_url is not None:
        key = jwks.key(issuer.jwks_url, kid)
    else:
        raise AuthFailure("no-jwks", "token has no jku and the issuer has no JWKS")
    if key is None:
        raise AuthFailure("unknown-kid", f"unknown kid {kid[:64]!r} for issuer {issuer.iss!r}")
    return key


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthFailure("bad-claim", f"claim {name} missing or not a number")
    return int(value)


def _check_claims(
    claims: Mapping[str, Any], issuer: TrustedIssuer, *, audience: str, leeway: int, now: float
) -> VerifiedToken:
    if claims.get("iss") != issuer.iss:
        raise AuthFailure("iss-changed", "iss changed")  # cannot happen: the payload was read above
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or audience not in audiences:
        raise AuthFailure("aud-mismatch", f"aud does not name this endpoint ({audience})")
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    if now > exp + leeway:
        raise AuthFailure("expired", "token expired")
    if iat > now + leeway:
        raise AuthFailure("issued-in-future", "token issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise AuthFailure("not-yet-valid", "token not yet valid (nbf)")
    if exp < iat:
        raise AuthFailure("bad-lifetime", "token expires before it was issued")
    if exp - iat > MAX_LIFETIME_SECONDS:
        raise AuthFailure(
            "lifetime-too-long", f"token lifetime {exp - iat} s exceeds {MAX_LIFETIME_SECONDS} s"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_ID_LENGTH:
        raise AuthFailure("bad-claim", "claim jti missing or unusable")
    if len(issuer.iss) > MAX_ID_LENGTH:
        raise AuthFailure("issuer-too-long", "issuer too long for the replay cache")
    tenant = claims.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise AuthFailure("bad-claim", "claim tenant is not a string")
    if issuer.tenants and tenant not in issuer.tenants:
        raise AuthFailure(
            "tenant-not-allowed", f"tenant {str(tenant)[:64]!r} not allowed for this issuer"
        )
    listed = bool(issuer.tenants) and tenant in issuer.tenants
    return VerifiedToken(iss=issuer.iss, jti=jti, exp=exp, tenant=tenant, tenant_listed=listed)

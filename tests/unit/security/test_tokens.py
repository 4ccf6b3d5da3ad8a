"""verify_token on its own: the header and key checks the HTTP tests do not reach."""

from __future__ import annotations

import time

import pytest

from cds_service.security.issuers import TrustedIssuer
from cds_service.security.jwks import JwksCache, import_key_set
from cds_service.security.tokens import MAX_TOKEN_BYTES, AuthFailure, verify_token
from tests.support.jwt_tokens import claims, forge, jwks, new_key, sign

ISS = "https://ehr.test"
AUD = "http://cds.test/cds-services"


def _verify(token: str, issuer: TrustedIssuer):
    return verify_token(
        token, audience=AUD, issuers={ISS: issuer}, jwks=JwksCache(), leeway=60, now=time.time()
    )


def _inline(*keys, **extra) -> TrustedIssuer:
    return TrustedIssuer(iss=ISS, jwks=import_key_set(jwks(*keys)), **extra)


def test_a_valid_token_gives_issuer_jti_and_tenant():
    key = new_key("ES384", "k")
    verified = _verify(sign(key, "ES384", claims(ISS, AUD, tenant="t1", jti="j-1")), _inline(key))
    assert (verified.iss, verified.jti, verified.tenant) == (ISS, "j-1", "t1")


def test_a_key_pinned_to_one_algorithm_is_not_used_with_another():
    key = new_key("RS384", "k")
    pinned = {**key.as_dict(private=False), "alg": "RS256"}
    issuer = TrustedIssuer(iss=ISS, jwks=import_key_set({"keys": [pinned]}))
    with pytest.raises(AuthFailure, match="is for RS256"):
        _verify(sign(key, "RS384", claims(ISS, AUD)), issuer)


def test_an_es256_token_cannot_use_a_p384_key():
    key = new_key("ES384", "k")
    forged = sign(new_key("ES256", "k"), "ES256", claims(ISS, AUD))  # same kid, other curve
    with pytest.raises(AuthFailure, match="signature"):
        _verify(forged, _inline(key))


@pytest.mark.parametrize(
    "header, reason",
    [
        ({"crit": ["exp"], "exp": 1}, "critical|malformed"),
        ({"jku": 42}, "jku|malformed"),
        ({"kid": ""}, "no kid"),
        ({"typ": "at+jwt"}, "typ"),
    ],
)
def test_header_problems_are_refused(header, reason):
    key = new_key("ES384", "k")
    fields = {"alg": "ES384", "typ": "JWT", "kid": "k", **header}
    token = forge(fields, claims(ISS, AUD), None) + "c2ln"  # refused before the signature
    with pytest.raises(AuthFailure, match=reason):
        _verify(token, _inline(key))


def test_an_issuer_with_only_a_jku_list_needs_a_jku_header():
    key = new_key("ES384", "k")
    issuer = TrustedIssuer(iss=ISS, jku=("https://ehr.test/jwks",))
    with pytest.raises(AuthFailure, match="no jku"):
        _verify(sign(key, "ES384", claims(ISS, AUD)), issuer)


@pytest.mark.parametrize(
    "token",
    [
        "x" * (MAX_TOKEN_BYTES + 1),
        "a.b",
        "a.b.c.d",
        "é.é.é",
        "eyJhbGciOiJFUzM4NCJ9.bm90IGpzb24.c2ln",
    ],
)
def test_garbage_is_refused_without_an_exception_escaping(token):
    with pytest.raises(AuthFailure):
        _verify(token, _inline(new_key("ES384", "k")))


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"exp": "soon"}, "exp"),
        ({"iat": True}, "iat"),
        ({"jti": "j" * 256}, "jti"),
        ({"jti": 7}, "jti"),
        ({"tenant": ["t1"]}, "tenant"),
        ({"iat": int(time.time()), "exp": int(time.time()) - 10}, "before it was issued|expired"),
    ],
)
def test_claim_problems_are_refused(changes, reason):
    key = new_key("ES384", "k")
    with pytest.raises(AuthFailure, match=reason):
        _verify(sign(key, "ES384", claims(ISS, AUD, **changes)), _inline(key))


def test_aud_of_the_wrong_type_is_refused():
    key = new_key("ES384", "k")
    with pytest.raises(AuthFailure, match="aud"):
        _verify(sign(key, "ES384", claims(ISS, {"url": AUD})), _inline(key))

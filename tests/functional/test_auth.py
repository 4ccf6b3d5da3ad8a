"""JWT authentication of CDS clients over the app, with keys made here and JWKS served over
real loopback HTTP: every refusal is a bare 401, every acceptance a normal answer."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, g
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Settings
from tests.conftest import ContractClient
from tests.support.fhir_stub import FhirStub
from tests.support.hook_requests import SELECT, sample_request
from tests.support.jwt_tokens import claims, forge, jwks, new_key, sign

BASE = "http://cds.test"
ISS = "https://ehr.test"
INLINE_ISS = "https://inline.test"
DISCOVERY = "/cds-services"
FEEDBACK = f"{SELECT}/feedback"
UNAUTHORIZED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login"}],
}


class Clock:
    """A monotonic clock the test moves by hand (the JWKS cache's refresh limit)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """The JWKS server, the keys and the trusted-issuers file of one test."""

    stub: FhirStub
    settings: Settings
    keys: dict[str, Any]
    clock: Clock = field(default_factory=Clock)

    def app(self) -> Flask:
        app = create_app(self.settings)
        app.test_client_class = ContractClient
        app.extensions["cds_auth"].jwks.clock = self.clock
        return app

    def token(self, path: str, alg: str = "ES384", *, key: Any = None, **changes: Any) -> str:
        header = changes.pop("header", {})
        body = claims(changes.pop("iss", ISS), changes.pop("aud", BASE + path), **changes)
        return sign(key or self.keys[alg], alg, body, **header)

    def fetches(self, route: str = "jwks.json") -> int:
        return len(self.stub.requests_to(route))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FhirStub(base_path="") as stub:
        keys = {alg: new_key(alg, f"{alg.lower()}-1") for alg in ("ES384", "RS384", "ES256")}
        keys["RS256"] = keys["RS384"]
        keys["inline"] = new_key("ES384", "inline-1")
        keys["jku"] = new_key("ES384", "jku-1")
        stub.add("jwks.json", jwks(keys["ES384"], keys["RS384"], keys["ES256"]), content_type=J)
        stub.add("allowed-jku.json", jwks(keys["jku"]), content_type=J)
        issuers = {
            ISS: {"jwks_url": stub.url("jwks.json"), "jku": [stub.url("allowed-jku.json")]},
            INLINE_ISS: {"jwks": jwks(keys["inline"]), "tenants": ["hospital-a"]},
        }
        path = tmp_path / "issuers.yaml"
        path.write_text(yaml.safe_dump(issuers), encoding="utf-8")
        settings = Settings(
            env="test",
            public_base_url=BASE,
            database_url=f"sqlite:///{tmp_path / 'audit.db'}",
            trusted_issuers_path=path,
            database_wait_seconds=5.0,  # rows read back: see tests/conftest.py
        )
        yield World(stub, settings, keys)


J = "application/json"


@pytest.fixture
def app(world: World) -> Iterator[Flask]:
    app = world.app()
    yield app
    app.extensions["cds_audit"].store.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept-Language": "en"}


def discover(client: FlaskClient, token: str) -> Any:
    return client.get(DISCOVERY, headers=bearer(token))


def call(client: FlaskClient, token: str) -> Any:
    return client.post(SELECT, json=sample_request(), headers=bearer(token))


def assert_refused(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_opens_discovery(client, world, alg):
    response = discover(client, world.token(DISCOVERY, alg))
    assert response.status_code == 200
    assert response.get_json()["services"]


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_opens_the_service_call(client, world, alg):
    response = call(client, world.token(SELECT, alg))
    assert response.status_code == 200
    assert response.get_json()["cards"]


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_opens_feedback(client, world, alg):
    card = call(client, world.token(SELECT, alg)).get_json()["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-01-05T10:00:00Z",
    }
    response = client.post(
        FEEDBACK, json={"feedback": [item]}, headers=bearer(world.token(FEEDBACK, alg))
    )
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_es256_and_rs256_are_accepted_too(client, world, alg):
    assert discover(client, world.token(DISCOVERY, alg)).status_code == 200


def test_aud_may_be_an_array_naming_the_endpoint(client, world):
    token = world.token(DISCOVERY, aud=[f"{BASE}/other", BASE + DISCOVERY])
    assert discover(client, token).status_code == 200


def test_inline_jwks_issuer_and_its_tenant_reach_the_request(app, client, world):
    seen = []

    @app.after_request
    def capture(response):
        seen.append(g.get("cds_tenant"))
        return response

    token = world.token(DISCOVERY, key=world.keys["inline"], iss=INLINE_ISS, tenant="hospital-a")
    assert discover(client, token).status_code == 200
    assert seen == ["hospital-a"]
    assert world.fetches() == 0  # inline keys need no fetch


def test_tenant_not_on_the_issuers_list_is_401(client, world):
    token = world.token(DISCOVERY, key=world.keys["inline"], iss=INLINE_ISS, tenant="hospital-b")
    assert_refused(discover(client, token))


def test_unauthenticated_endpoints_stay_open(client):
    for path in ("/healthz", "/openapi.yaml", "/patient-info?lang=en"):
        assert client.get(path).status_code == 200, path
    preflight = client.options(
        SELECT,
        headers={
            "Origin": "https://ehr.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200


# -- refused -------------------------------------------------------------------------------


def test_alg_none_is_401(client, world):
    header = {"alg": "none", "typ": "JWT", "kid": "es384-1"}
    assert_refused(discover(client, forge(header, claims(ISS, BASE + DISCOVERY), None)))


def test_hs256_signed_with_the_public_key_is_401(client, world):
    """The classic confusion: the verifier's public key used as an HMAC secret."""
    public_pem = world.keys["RS384"].as_pem(private=False)
    header = {"alg": "HS256", "typ": "JWT", "kid": "rs384-1"}
    assert_refused(discover(client, forge(header, claims(ISS, BASE + DISCOVERY), public_pem)))


def test_hs256_with_a_random_secret_is_401(client, world):
    header = {"alg": "HS256", "typ": "JWT", "kid": "es384-1"}
    token = forge(header, claims(ISS, BASE + DISCOVERY), b"s3cret-s3cret-s3cret-s3cret-s3cret")
    assert_refused(discover(client, token))


def test_wrong_aud_is_401(client, world):
    assert_refused(call(client, world.token(SELECT, aud=BASE + DISCOVERY)))


def test_aud_on_another_host_is_401(client, world):
    assert_refused(discover(client, world.token(DISCOVERY, aud="https://evil.test/cds-services")))


def test_expired_token_is_401(client, world):
    token = world.token(DISCOVERY, iat=_ago(400), exp=_ago(61 + 5))
    assert_refused(discover(client, token))


def test_token_within_the_leeway_is_accepted(client, world):
    assert discover(client, world.token(DISCOVERY, iat=_ago(100), exp=_ago(30))).status_code == 200


def test_token_issued_in_the_future_is_401(client, world):
    token = world.token(DISCOVERY, iat=_ago(-120), exp=_ago(-300))
    assert_refused(discover(client, token))


def test_token_not_yet_valid_by_nbf_is_401(client, world):
    assert_refused(discover(client, world.token(DISCOVERY, nbf=_ago(-120))))


def test_token_living_longer_than_an_hour_is_401(client, world):
    assert_refused(discover(client, world.token(DISCOVERY, exp=_ago(-3601 - 5))))


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "aud"])
def test_token_without_a_required_claim_is_401(client, world, claim):
    assert_refused(discover(client, world.token(DISCOVERY, **{claim: None})))


def test_replayed_jti_is_401(client, world):
    token = world.token(DISCOVERY)
    assert discover(client, token).status_code == 200
    assert_refused(discover(client, token))


def test_replayed_jti_is_401_on_another_instance_sharing_the_database(app, world):
    token = world.token(DISCOVERY)
    other = world.app()
    try:
        assert discover(app.test_client(), token).status_code == 200
        assert_refused(discover(other.test_client(), token))
    finally:
        other.extensions["cds_audit"].store.engine.dispose()


def test_an_answer_made_but_never_sent_leaves_that_request_retryable_elsewhere(world):
    """An instance killed between making an answer and writing it: the balancer's retry of
    the very same request is served by another instance; after that answer is sent, the token
    is spent everywhere, and another request with it is refused throughout."""
    # Requests are bound to their token by a keyed digest: a retry needs the pseudonym key.
    world.settings = replace(world.settings, pseudonym_key="k" * 32)
    token = world.token(SELECT)
    body = sample_request()
    app, other = world.app(), world.app()
    try:
        # buffered=False: the answer is made but the server never closes it (killed first).
        unsent = app.test_client().post(SELECT, json=body, headers=bearer(token), buffered=False)
        assert unsent.status_code == 200
        changed = {**body, "hookInstance": "another-call"}
        assert_refused(other.test_client().post(SELECT, json=changed, headers=bearer(token)))
        retried = other.test_client().post(SELECT, json=body, headers=bearer(token))
        assert retried.status_code == 200
        summaries = [[card["summary"] for card in r.get_json()["cards"]] for r in (unsent, retried)]
        assert summaries[0] == summaries[1]
        for instance in (other, app):
            assert_refused(instance.test_client().post(SELECT, json=body, headers=bearer(token)))
    finally:
        for each in (app, other):
            each.extensions["cds_audit"].store.engine.dispose()


def test_an_answer_is_spent_once_the_server_has_sent_it(world):
    world.settings = replace(world.settings, pseudonym_key="k" * 32)
    token = world.token(SELECT)
    app = world.app()
    try:
        body = sample_request()
        sent = app.test_client().post(SELECT, json=body, headers=bearer(token), buffered=False)
        assert sent.status_code == 200
        sent.close()  # what the WSGI server does once the bytes are written
        assert_refused(app.test_client().post(SELECT, json=body, headers=bearer(token)))
    finally:
        app.extensions["cds_audit"].store.engine.dispose()


def test_unknown_kid_is_401_after_a_refresh(client, world):
    assert discover(client, world.token(DISCOVERY)).status_code == 200
    assert world.fetches() == 1
    world.clock.now += 61
    stranger = new_key("ES384", "nobody-knows")
    assert_refused(discover(client, world.token(DISCOVERY, key=stranger)))
    assert world.fetches() == 2  # refreshed once, the kid is still unknown


def test_rotated_key_is_found_by_a_refresh(client, world):
    assert discover(client, world.token(DISCOVERY)).status_code == 200
    rotated = new_key("ES384", "es384-2")
    world.stub.add("jwks.json", jwks(world.keys["ES384"], rotated), content_type=J)
    world.clock.now += 61
    assert discover(client, world.token(DISCOVERY, key=rotated)).status_code == 200
    assert world.fetches() == 2
    assert discover(client, world.token(DISCOVERY, key=rotated)).status_code == 200
    assert world.fetches() == 2  # cached


def test_unknown_kids_cannot_force_a_fetch_per_request(client, world):
    assert discover(client, world.token(DISCOVERY)).status_code == 200
    for number in range(5):
        stranger = new_key("ES256", f"made-up-{number}")
        assert_refused(discover(client, world.token(DISCOVERY, "ES256", key=stranger)))
    assert world.fetches() == 1  # within the refresh interval: no fetch at all


def test_unknown_iss_is_401_without_a_fetch(client, world):
    assert_refused(discover(client, world.token(DISCOVERY, iss="https://stranger.test")))
    assert world.fetches() == 0


def test_tampered_signature_is_401(client, world):
    head, body, signature = world.token(DISCOVERY).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    assert_refused(discover(client, f"{head}.{body}.{flipped}"))


def test_tampered_payload_is_401(client, world):
    head, _, signature = world.token(DISCOVERY).split(".")
    other_body = world.token(DISCOVERY, tenant="someone-else").split(".")[1]
    assert_refused(discover(client, f"{head}.{other_body}.{signature}"))


def test_signature_by_another_key_under_a_known_kid_is_401(client, world):
    impostor = new_key("ES384", "es384-1")
    assert_refused(discover(client, world.token(DISCOVERY, key=impostor)))


@pytest.mark.parametrize("path", [DISCOVERY, SELECT, FEEDBACK])
def test_missing_authorization_header_is_401(client, path):
    response = client.get(path) if path == DISCOVERY else client.post(path, json={})
    assert_refused(response)


@pytest.mark.parametrize(
    "value", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer-token", "Bearer not.a.jwt"]
)
def test_malformed_authorization_header_is_401(client, value):
    assert_refused(client.get(DISCOVERY, headers={"Authorization": value}))


@pytest.mark.parametrize("header", [{"typ": None}, {"kid": None}, {"typ": "JOSE+JSON"}])
def test_header_without_typ_jwt_or_kid_is_401(client, world, header):
    assert_refused(discover(client, world.token(DISCOVERY, header=header)))


def test_jku_not_on_the_allow_list_is_401_and_not_fetched(client, world):
    world.stub.add("evil.json", jwks(world.keys["jku"]), content_type=J)
    token = world.token(
        DISCOVERY, key=world.keys["jku"], header={"jku": world.stub.url("evil.json")}
    )
    assert_refused(discover(client, token))
    assert world.fetches("evil.json") == 0


def test_jku_on_the_allow_list_is_fetched_and_honoured(client, world):
    url = world.stub.url("allowed-jku.json")
    token = world.token(DISCOVERY, key=world.keys["jku"], header={"jku": url})
    assert discover(client, token).status_code == 200
    assert world.fetches("allowed-jku.json") == 1


def test_refusal_is_logged_with_its_reason_but_never_the_token(client, world, caplog):
    token = world.token(DISCOVERY, aud=BASE + SELECT)
    with caplog.at_level(logging.INFO, logger="cds_service.security"):
        assert_refused(discover(client, token))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert [getattr(r, "reason", None) for r in caplog.records if hasattr(r, "reason")] == [
        "aud-mismatch"
    ]
    assert token not in text and token.split(".")[2] not in text


def _ago(seconds: int) -> int:
    import time

    return int(time.time()) - seconds


def test_the_tokens_tenant_is_recorded_in_the_audit_row(app, client, world):
    from sqlalchemy import select

    from cds_service.audit.models import evaluation

    token = world.token(SELECT, key=world.keys["inline"], iss=INLINE_ISS, tenant="hospital-a")
    assert call(client, token).status_code == 200
    with app.extensions["cds_audit"].store.engine.connect() as connection:
        tenants = connection.execute(select(evaluation.c.tenant)).scalars().all()
    assert tenants == ["hospital-a"]


@pytest.mark.parametrize("claim", ["123456782", "dr-jansen", "=HYPERLINK(1)"])
def test_a_tenant_claim_no_issuer_lists_is_stored_as_its_pseudonym(app, client, world, claim):
    from sqlalchemy import select

    from cds_service.audit.models import evaluation
    from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser

    assert call(client, world.token(SELECT, tenant=claim)).status_code == 200
    with app.extensions["cds_audit"].store.engine.connect() as connection:
        tenants = connection.execute(select(evaluation.c.tenant)).scalars().all()
    assert tenants == [Pseudonymiser(DEVELOPMENT_KEY)("tenant", claim)]


def _refusals(client, world, send) -> list[dict]:
    """The JSON log lines (as the service writes them) of the refusals `send` provokes."""
    import json

    from cds_service.observability.logs import JsonFormatter

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.INFO)
    logger = logging.getLogger("cds_service.security")
    logger.addHandler(handler)
    try:
        send()
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    return [line for line in lines if line["message"].startswith("authentication refused")]


def _flip_signature(token: str) -> str:
    head, body, signature = token.split(".")
    return f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda w: w.token(DISCOVERY, aud=BASE + SELECT), "aud-mismatch"),
        (lambda w: w.token(DISCOVERY, exp=_ago(120), iat=_ago(600)), "expired"),
        (lambda w: _flip_signature(w.token(DISCOVERY)), "bad-signature"),
        (lambda w: w.token(DISCOVERY, iss="https://stranger.test"), "issuer-not-trusted"),
        (lambda w: w.token(DISCOVERY, iat=_ago(-600)), "issued-in-future"),
        (lambda w: w.token(DISCOVERY, jti=None), "bad-claim"),
        (
            lambda w: w.token(
                DISCOVERY, key=w.keys["jku"], header={"jku": w.stub.url("evil.json")}
            ),
            "jku-not-allowed",
        ),
        (lambda w: "not-a-jwt", "malformed-token"),
    ],
)
def test_refusals_are_logged_as_short_fixed_codes(client, world, make, code):
    token = make(world)
    lines = _refusals(client, world, lambda: assert_refused(discover(client, token)))
    assert [line.get("reason") for line in lines] == [code]
    text = str(lines)
    assert "[withheld]" not in text and token not in text


def test_a_replayed_jti_and_a_missing_token_are_logged_by_their_codes(client, world):
    token = world.token(DISCOVERY)
    assert discover(client, token).status_code == 200

    def send() -> None:
        assert_refused(discover(client, token))
        assert_refused(client.get(DISCOVERY))

    codes = [line.get("reason") for line in _refusals(client, world, send)]
    assert codes == ["replayed-jti", "no-bearer-token"]


def test_a_refusal_logs_the_route_template_never_the_path_as_sent(client, world):
    from flask.testing import FlaskClient

    plain = FlaskClient(client.application)  # an undocumented path, on purpose

    def send() -> None:
        assert_refused(plain.get("/cds-services/Gerritdina-Zwanenburg-BSN123456782"))
        assert_refused(client.post(SELECT, json=sample_request()))

    lines = _refusals(client, world, send)
    assert [line.get("endpoint") for line in lines] == ["unmatched", "/cds-services/<service_id>"]
    assert "Zwanenburg" not in str(lines) and "123456782" not in str(lines)
    assert all("path" not in line for line in lines)


# -- the CDS Hooks Sandbox recipe (README "Trusting the CDS Hooks Sandbox") ------------------------


def sandbox_token(world: World, path: str, *, key: Any, jku: str, iss: str = ISS, **extra) -> str:
    """A token shaped like the Sandbox's: ES384, kid, jku, aud = the exact URL, 5 minutes."""
    now = int(time.time())
    body = {"iss": iss, "aud": BASE + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return sign(key, "ES384", {**body, **extra}, jku=jku)


def test_sandbox_token_whose_jku_is_the_issuers_jwks_url_is_accepted_once(client, world):
    token = sandbox_token(world, SELECT, key=world.keys["ES384"], jku=world.stub.url("jwks.json"))
    assert call(client, token).status_code == 200
    assert world.fetches("jwks.json") == 1
    lines = _refusals(client, world, lambda: assert_refused(call(client, token)))
    assert [line.get("reason") for line in lines] == ["replayed-jti"]


def test_sandbox_token_with_a_jku_is_checked_against_inline_keys_by_kid(client, world):
    # the jku names a server the service never fetches: the inline key decides
    jku = world.stub.url("evil.json")
    token = sandbox_token(
        world, SELECT, key=world.keys["inline"], jku=jku, iss=INLINE_ISS, tenant="hospital-a"
    )
    assert call(client, token).status_code == 200
    assert world.fetches("evil.json") == 0
    forged = sandbox_token(
        world,
        SELECT,
        key=new_key("ES384", "inline-1"),
        jku=jku,
        iss=INLINE_ISS,
        tenant="hospital-a",
    )
    assert_refused(call(client, forged))

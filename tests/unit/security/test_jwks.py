"""The JWKS cache against a real loopback server: fetch once, refresh sparingly, keep keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cds_service.security.jwks import MAX_JWKS_BYTES, JwksCache
from tests.support.fhir_stub import FhirStub
from tests.support.jwt_tokens import jwks, new_key

J = "application/json"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stub() -> Iterator[FhirStub]:
    with FhirStub(base_path="") as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> JwksCache:
    return JwksCache(timeout_seconds=0.5, ttl_seconds=600, min_refresh_seconds=60, clock=clock)


def test_keys_are_fetched_once_and_cached(stub, cache):
    key = new_key("ES384", "a")
    stub.add("k", jwks(key), content_type=J)
    assert cache.key(stub.url("k"), "a").kid == "a"
    assert cache.key(stub.url("k"), "a").kid == "a"
    assert len(stub.requests_to("k")) == 1


def test_unknown_kid_refreshes_at_most_once_per_interval(stub, cache, clock):
    stub.add("k", jwks(new_key("ES384", "a")), content_type=J)
    cache.key(stub.url("k"), "a")
    assert cache.key(stub.url("k"), "b") is None
    assert len(stub.requests_to("k")) == 1
    clock.now += 60
    stub.add("k", jwks(new_key("ES384", "a"), new_key("ES384", "b")), content_type=J)
    assert cache.key(stub.url("k"), "b").kid == "b"
    assert len(stub.requests_to("k")) == 2


def test_stale_keys_are_refetched_after_the_ttl(stub, cache, clock):
    stub.add("k", jwks(new_key("ES384", "a")), content_type=J)
    cache.key(stub.url("k"), "a")
    clock.now += 601
    stub.add("k", jwks(new_key("ES384", "c")), content_type=J)  # "a" retired by the issuer
    assert cache.key(stub.url("k"), "a") is None
    assert len(stub.requests_to("k")) == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": {"error": "x"}},
        {"raw": b"not json", "content_type": "text/plain"},
        {"status": 302, "body": None, "headers": {"Location": "http://127.0.0.1:1/elsewhere"}},
        {"raw": b'{"keys": [' + b" " * MAX_JWKS_BYTES + b"]}"},
        {"delay": 3},
    ],
)
def test_a_failed_refresh_keeps_the_keys_already_known(stub, cache, clock, answer):
    stub.add("k", jwks(new_key("ES384", "a")), content_type=J)
    cache.key(stub.url("k"), "a")
    clock.now += 601
    stub.add("k", **answer)
    assert cache.key(stub.url("k"), "a").kid == "a"
    assert cache.key(stub.url("k"), "zzz") is None
    assert len(stub.requests_to("k")) == 2  # the failure is rate-limited like a success


def test_an_unreachable_jwks_gives_no_key(cache):
    assert cache.key("http://127.0.0.1:1/jwks", "a") is None


def test_symmetric_and_unusable_keys_are_skipped(stub, cache):
    good = new_key("RS384", "r").as_dict(private=False)
    keys = [
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
        {**new_key("ES256", "enc").as_dict(private=False), "use": "enc"},
        {k: v for k, v in new_key("ES256", "nokid").as_dict(private=False).items() if k != "kid"},
        good,
    ]
    stub.add("k", {"keys": keys}, content_type=J)
    assert cache.key(stub.url("k"), "r") is not None
    assert all(cache.key(stub.url("k"), kid) is None for kid in ("h", "broken", "enc"))


def test_calls_arriving_while_the_first_fetch_runs_wait_for_its_keys(stub, cache):
    """After a start, every call of the first burst gets the key; none is refused meanwhile."""
    import threading

    key = new_key("ES384", "a")
    stub.add("slow", jwks(key), content_type=J, delay=0.3)
    found: list[str | None] = []
    lock = threading.Lock()

    def ask() -> None:
        got = cache.key(stub.url("slow"), "a")
        with lock:
            found.append(got.kid if got is not None else None)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert found == ["a"] * 8
    assert len(stub.requests_to("slow")) == 1

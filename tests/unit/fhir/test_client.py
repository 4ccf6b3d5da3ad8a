"""FhirClient and the fhirServer allow-list, with HTTP mocked at the FHIR server boundary."""

from __future__ import annotations

import time

import pytest
import requests
import responses

from cds_service.config import Settings
from cds_service.fhir.client import (
    MIN_RETRY_SECONDS,
    FhirAuthError,
    FhirBadResponse,
    FhirClient,
    FhirError,
    FhirForeignLink,
    FhirRequestRejected,
    FhirUnavailable,
    is_allowed_server,
)

BASE = "https://fhir.example.org/r4"
TOKEN = "tok-3f9a-very-secret"


def bundle(*resources: dict, next_url: str | None = None) -> dict:
    data: dict = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url:
        data["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return data


def condition(n: int) -> dict:
    return {"resourceType": "Condition", "id": f"c{n}"}


@pytest.fixture
def client() -> FhirClient:
    with requests.Session() as session:
        yield FhirClient(BASE, access_token=TOKEN, timeout=1.0, max_pages=3, session=session)


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def assert_no_token(exc: BaseException) -> None:
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)
    assert TOKEN not in repr(getattr(exc, "outcome", None))
    assert exc.__cause__ is None or TOKEN not in str(exc.__cause__)


class TestHeaders:
    def test_bearer_token_and_accept_are_sent(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        client.read("Patient/p1")
        headers = mocked.calls[0].request.headers
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Accept"] == "application/fhir+json"

    def test_no_authorization_header_without_token(self, mocked):
        mocked.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        with requests.Session() as session:
            FhirClient(BASE, access_token=None, timeout=1, max_pages=1, session=session).read(
                "Patient/p1"
            )
        assert "Authorization" not in mocked.calls[0].request.headers

    def test_repr_hides_token(self, client):
        assert TOKEN not in repr(client)

    def test_uses_shared_pooled_session_by_default(self):
        first = FhirClient(BASE, access_token=None, timeout=1, max_pages=1)
        second = FhirClient("https://other.example/fhir", access_token=None, timeout=1, max_pages=1)
        assert first.session is second.session
        assert first.session.trust_env is False  # no .netrc credentials replacing the token


class TestSearch:
    def test_returns_resources_of_searchset(self, client, mocked):
        mocked.get(f"{BASE}/Condition?patient=p1", json=bundle(condition(1), condition(2)))
        assert [r["id"] for r in client.search("Condition?patient=p1")] == ["c1", "c2"]

    def test_query_is_sent_as_given(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json=bundle())
        client.search("Condition?patient=p1&clinical-status=active")
        assert mocked.calls[0].request.url == (
            f"{BASE}/Condition?patient=p1&clinical-status=active"
        )

    def test_outcome_entries_are_not_results(self, client, mocked):
        data = bundle(condition(1))
        data["entry"].append(
            {
                "resource": {"resourceType": "OperationOutcome", "issue": []},
                "search": {"mode": "outcome"},
            }
        )
        mocked.get(f"{BASE}/Condition", json=data)
        assert [r["resourceType"] for r in client.search("Condition?patient=p1")] == ["Condition"]

    def test_follows_next_links(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url=f"{BASE}?page=2"))
        mocked.get(BASE, json=bundle(condition(2), next_url=f"{BASE}/?page=3"))
        mocked.get(f"{BASE}/", json=bundle(condition(3)))
        assert [r["id"] for r in client.search("Condition?patient=p1")] == ["c1", "c2", "c3"]
        assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in mocked.calls)

    def test_relative_next_link_is_resolved(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url="Condition?page=2"))
        mocked.get(f"{BASE}/Condition", json=bundle(condition(2)))
        assert len(client.search("Condition?patient=p1")) == 2

    def test_stops_after_max_pages(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(0), next_url=f"{BASE}/Condition?p"))
        assert len(client.search("Condition?patient=p1")) == 3  # max_pages=3
        assert len(mocked.calls) == 3

    @pytest.mark.parametrize(
        "next_url",
        [
            "https://evil.example/r4/Condition?page=2",
            "http://fhir.example.org/r4/Condition?page=2",  # scheme downgrade
            "https://fhir.example.org:8443/r4/Condition?page=2",  # other port
            "https://fhir.example.org/other/Condition?page=2",  # outside the base path
            "https://fhir.example.org/r4evil/Condition?page=2",  # prefix but not a segment
            "//evil.example/r4/Condition",  # scheme-relative
        ],
    )
    def test_foreign_next_link_is_refused(self, client, mocked, next_url):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url=next_url))
        with pytest.raises(FhirForeignLink) as caught:
            client.search("Condition?patient=p1")
        assert len(mocked.calls) == 1  # nothing, least of all the token, went to the other URL
        assert_no_token(caught.value)
        assert isinstance(caught.value, FhirBadResponse)

    @pytest.mark.parametrize(
        "next_url",
        [
            "https://fhir.example.org/r4/%2e%2e/admin/Condition?page=2",
            "https://fhir.example.org/r4/%2E%2E/admin?page=2",
            "https://fhir.example.org/r4/Condition/%2e%2e/%2e%2e/admin?page=2",
            "https://fhir.example.org/r4/.%2e/admin?page=2",
            "https://fhir.example.org/r4/%2e%2e%2fadmin?page=2",  # an encoded slash too
            "https://fhir.example.org/r4/%2e%2e%5cadmin?page=2",  # and a backslash
            "/r4/%2e%2e/admin?page=2",
            "%2e%2e/admin?page=2",
        ],
    )
    def test_next_link_climbing_out_of_the_base_path_when_decoded_is_refused(
        self, client, mocked, next_url
    ):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url=next_url))
        with pytest.raises(FhirForeignLink):
            client.search("Condition?patient=p1")
        assert len(mocked.calls) == 1

    def test_next_link_with_dot_segments_that_stay_inside_is_followed(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url="x/%2e%2e/Condition2"))
        mocked.get(f"{BASE}/Condition2", json=bundle(condition(2)))
        assert len(client.search("Condition?patient=p1")) == 2

    def test_wrong_resource_type_is_bad_response(self, client, mocked):
        mocked.get(f"{BASE}/Condition", json={"resourceType": "Patient", "id": "p1"})
        with pytest.raises(FhirBadResponse):
            client.search("Condition?patient=p1")

    def test_200_operation_outcome_is_bad_response_with_outcome(self, client, mocked):
        outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "nope"}]}
        mocked.get(f"{BASE}/Condition", json=outcome)
        with pytest.raises(FhirBadResponse) as caught:
            client.search("Condition?patient=p1")
        assert caught.value.outcome == outcome

    def test_404_search_is_bad_response(self, client, mocked):
        mocked.get(f"{BASE}/Condition", status=404)
        with pytest.raises(FhirBadResponse):
            client.search("Condition?patient=p1")

    def test_absolute_query_is_refused(self, client):
        with pytest.raises(ValueError):
            client.search("https://evil.example/Condition")


class TestRead:
    def test_returns_resource(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        assert client.read("Patient/p1") == {"resourceType": "Patient", "id": "p1"}

    @pytest.mark.parametrize("status", [404, 410])
    def test_missing_resource_is_none(self, client, mocked, status):
        mocked.get(f"{BASE}/Patient/p1", status=status, json={"resourceType": "OperationOutcome"})
        assert client.read("Patient/p1") is None

    def test_wrong_resource_type_is_bad_response(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", json={"resourceType": "Practitioner", "id": "p1"})
        with pytest.raises(FhirBadResponse):
            client.read("Patient/p1")

    def test_redirect_is_not_followed(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", status=302, headers={"Location": "https://evil.example/"})
        with pytest.raises(FhirBadResponse):
            client.read("Patient/p1")
        assert len(mocked.calls) == 1


class TestErrors:
    @pytest.mark.parametrize("status", [500, 502, 503, 429])
    def test_server_failure_is_unavailable(self, client, mocked, status):
        mocked.get(f"{BASE}/Patient/p1", status=status, body="oops")
        with pytest.raises(FhirUnavailable) as caught:
            client.read("Patient/p1")
        assert caught.value.status == status
        assert_no_token(caught.value)

    def test_connection_error_is_unavailable(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", body=requests.ConnectionError(f"boom {TOKEN}"))
        with pytest.raises(FhirUnavailable) as caught:
            client.read("Patient/p1")
        assert_no_token(caught.value)

    def test_timeout_is_unavailable(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", body=requests.ReadTimeout())
        with pytest.raises(FhirUnavailable, match="within"):
            client.read("Patient/p1")

    @pytest.mark.parametrize("status", [401, 403])
    def test_refused_token_is_auth_error(self, client, mocked, status):
        mocked.get(f"{BASE}/Patient/p1", status=status)
        with pytest.raises(FhirAuthError) as caught:
            client.read("Patient/p1")
        assert_no_token(caught.value)

    def test_server_echoing_token_is_redacted(self, client, mocked):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"code": "login", "diagnostics": f"token {TOKEN} expired"}],
        }
        mocked.get(f"{BASE}/Patient/p1", status=401, json=outcome)
        with pytest.raises(FhirAuthError) as caught:
            client.read("Patient/p1")
        assert "expired" in caught.value.message
        assert TOKEN not in str(caught.value)

    def test_operation_outcome_diagnostics_are_carried(self, client, mocked):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": "db down"}],
        }
        mocked.get(f"{BASE}/Condition", status=500, json=outcome)
        with pytest.raises(FhirUnavailable, match="db down") as caught:
            client.search("Condition?patient=p1")
        assert caught.value.outcome == outcome

    def test_other_4xx_is_rejected_request(self, client, mocked):
        mocked.get(f"{BASE}/Condition", status=400)
        with pytest.raises(FhirRequestRejected):
            client.search("Condition?foo=bar")

    @pytest.mark.parametrize("body", ["<html>hello</html>", "", "\xff"])
    def test_non_json_is_bad_response(self, client, mocked, body):
        mocked.get(f"{BASE}/Patient/p1", body=body, content_type="text/html")
        with pytest.raises(FhirBadResponse):
            client.read("Patient/p1")

    def test_json_that_is_no_resource_is_bad_response(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", json=["not", "a", "resource"])
        with pytest.raises(FhirBadResponse):
            client.read("Patient/p1")

    def test_messages_name_the_resource_type_not_the_query(self, client, mocked):
        mocked.get(f"{BASE}/Condition", status=503)
        with pytest.raises(FhirError) as caught:
            client.search("Condition?patient=secret-patient-id")
        assert "Condition" in caught.value.message
        assert "secret-patient-id" not in caught.value.message

    def test_exhausted_deadline_makes_no_call(self, mocked):
        with requests.Session() as session:
            late = FhirClient(
                BASE,
                access_token=TOKEN,
                timeout=1,
                max_pages=1,
                session=session,
                deadline=time.monotonic() - 0.1,
            )
            with pytest.raises(FhirUnavailable, match="budget"):
                late.read("Patient/p1")
        assert len(mocked.calls) == 0


PATIENT = {"resourceType": "Patient", "id": "p1"}


class TestRetry:
    """One retry of a GET on connection errors and 502/503/504, only within the time budget."""

    @pytest.mark.parametrize("status", [502, 503, 504])
    def test_gateway_failure_is_retried_once_and_can_succeed(self, client, mocked, status):
        mocked.get(f"{BASE}/Patient/p1", status=status)
        mocked.get(f"{BASE}/Patient/p1", json=PATIENT)
        assert client.read("Patient/p1") == PATIENT
        assert len(mocked.calls) == 2

    def test_second_failure_is_reported_after_one_retry(self, client, mocked):
        mocked.get(f"{BASE}/Condition", status=503)
        with pytest.raises(FhirUnavailable, match="after one retry") as caught:
            client.search("Condition?patient=p1")
        assert caught.value.status == 503
        assert len(mocked.calls) == 2

    def test_connection_error_is_retried(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", body=requests.ConnectionError("reset"))
        mocked.get(f"{BASE}/Patient/p1", json=PATIENT)
        assert client.read("Patient/p1") == PATIENT
        assert len(mocked.calls) == 2

    @pytest.mark.parametrize(
        ("status", "error"),
        [(500, FhirUnavailable), (429, FhirUnavailable), (400, FhirRequestRejected)],
    )
    def test_other_statuses_are_not_retried(self, client, mocked, status, error):
        mocked.get(f"{BASE}/Patient/p1", status=status)
        with pytest.raises(error):
            client.read("Patient/p1")
        assert len(mocked.calls) == 1

    @pytest.mark.parametrize("failure", [requests.ReadTimeout(), requests.ConnectTimeout()])
    def test_timeouts_are_not_retried(self, client, mocked, failure):
        mocked.get(f"{BASE}/Patient/p1", body=failure)
        with pytest.raises(FhirUnavailable, match="within"):
            client.read("Patient/p1")
        assert len(mocked.calls) == 1

    def test_non_json_is_not_retried(self, client, mocked):
        mocked.get(f"{BASE}/Patient/p1", body="<html>", content_type="text/html")
        with pytest.raises(FhirBadResponse):
            client.read("Patient/p1")
        assert len(mocked.calls) == 1

    def test_no_retry_when_too_little_budget_is_left(self, mocked):
        mocked.get(f"{BASE}/Patient/p1", status=503)
        with requests.Session() as session:
            nearly_spent = FhirClient(
                BASE,
                access_token=TOKEN,
                timeout=1,
                max_pages=1,
                session=session,
                deadline=time.monotonic() + MIN_RETRY_SECONDS / 2,
            )
            with pytest.raises(FhirUnavailable) as caught:
                nearly_spent.read("Patient/p1")
        assert "retry" not in caught.value.message
        assert len(mocked.calls) == 1

    def test_each_page_gets_its_own_retry(self, client, mocked):
        mocked.get(f"{BASE}/Condition", status=502)
        mocked.get(f"{BASE}/Condition", json=bundle(condition(1), next_url=f"{BASE}/p2"))
        mocked.get(f"{BASE}/p2", status=504)
        mocked.get(f"{BASE}/p2", json=bundle(condition(2)))
        assert [r["id"] for r in client.search("Condition?patient=p1")] == ["c1", "c2"]
        assert len(mocked.calls) == 4


DEV = Settings(env="development", fhir_allowlist=("https://fhir.example.org/r4",))
PROD = Settings(
    env="production",
    fhir_allowlist=("https://fhir.example.org/r4", "https://ehr.example.com:8443"),
)


class TestAllowList:
    @pytest.mark.parametrize(
        "url",
        [
            "https://fhir.example.org/r4",
            "https://fhir.example.org/r4/",
            "https://FHIR.example.org/r4",
            "https://fhir.example.org:443/r4",
            "https://fhir.example.org/r4/tenant-a",
            "https://ehr.example.com:8443/api/FHIR/R4",
        ],
    )
    def test_allowed_in_production(self, url):
        assert is_allowed_server(url, PROD)

    @pytest.mark.parametrize(
        "url",
        [
            "https://fhir.example.org/r4evil",  # a string prefix, not a path prefix
            "https://fhir.example.org/",
            "https://fhir.example.org/r3",
            "https://fhir.example.org.evil.example/r4",
            "https://fhir.example.org:8443/r4",
            "https://ehr.example.com/api/FHIR/R4",  # allow-list names port 8443
            "http://fhir.example.org/r4",  # https required in production
            "https://fhir.example.org/r4/../admin",
            "https://fhir.example.org/r4/%2e%2e/admin",
            "https://user:pw@fhir.example.org/r4",
            "https://fhir.example.org/r4?x=1",
            "https://fhir.example.org/r4#frag",
            "https://fhir.example.org:notaport/r4",
            "ftp://fhir.example.org/r4",
            "fhir.example.org/r4",
            "",
        ],
    )
    def test_refused_in_production(self, url):
        assert not is_allowed_server(url, PROD)

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/fhir",
            "http://127.5.6.7/fhir",
            "http://localhost:9999/",
            "http://[::1]:8080/fhir",
            "https://localhost/fhir",
        ],
    )
    def test_loopback_only_in_development(self, url):
        assert is_allowed_server(url, DEV)
        assert is_allowed_server(url, DEV.with_overrides(env="test"))
        assert not is_allowed_server(url, PROD)

    def test_development_still_checks_the_list_for_other_hosts(self):
        assert is_allowed_server("https://fhir.example.org/r4/x", DEV)
        assert not is_allowed_server("http://fhir.example.org/r4", DEV)  # scheme is matched too
        http_entry = DEV.with_overrides(fhir_allowlist=("http://fhir.internal/r4",))
        assert is_allowed_server("http://fhir.internal/r4", http_entry)  # http tolerated in dev
        assert not is_allowed_server("https://evil.example/r4", DEV)
        assert not is_allowed_server("http://10.0.0.1/fhir", DEV)

    def test_allowlist_entry_with_trailing_slash(self):
        settings = Settings(env="production", fhir_allowlist=("https://fhir.example.org/r4/",))
        assert is_allowed_server("https://fhir.example.org/r4", settings)
        assert not is_allowed_server("https://fhir.example.org/r5", settings)

    def test_empty_allowlist_in_production_allows_nothing(self):
        assert not is_allowed_server("https://fhir.example.org/r4", Settings(env="production"))

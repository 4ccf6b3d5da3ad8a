"""Prefetch resolution: mocked FHIR server (responses) and a real loopback stub server."""

from __future__ import annotations

import json
import time

import pytest
import requests
import responses

from cds_service.config import Settings
from cds_service.errors import FhirServerNotAllowed, PrefetchUnavailable
from cds_service.fhir.prefetch import (
    MAX_CONCURRENT_FETCHES,
    flatten,
    gather_prefetch,
    resolve_prefetch,
)
from tests.support.fhir_stub import FhirStub

SERVER = "https://fhir.example.org/r4"
TOKEN = "access-7c1e-secret"
SETTINGS = Settings(env="production", fhir_allowlist=(SERVER,), fhir_timeout_seconds=1.0)
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
    "encounter": "Encounter/{{context.encounterId}}",
    "practitioner": "Practitioner/{{userPractitionerId}}",
}
PATIENT = {"resourceType": "Patient", "id": "p1"}
CONDITION = {"resourceType": "Condition", "id": "c1"}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}


def searchset(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def hook_request(prefetch: dict | None = None, **extra) -> dict:
    request = {
        "hook": "order-select",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p1", "userId": "Practitioner/u1", "encounterId": "e1"},
        "fhirServer": SERVER,
        "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer"},
    }
    if prefetch is not None:
        request["prefetch"] = prefetch
    request.update(extra)
    return request


def full_prefetch() -> dict:
    return {
        "patient": PATIENT,
        "conditions": searchset(CONDITION),
        "encounter": {"resourceType": "Encounter", "id": "e1"},
        "practitioner": {"resourceType": "Practitioner", "id": "u1"},
    }


def outcome_json(error: PrefetchUnavailable) -> str:
    return json.dumps(error.to_operation_outcome())


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


class TestUsingWhatWasSent:
    def test_all_keys_present_makes_no_call(self, mocked, session):
        sent = full_prefetch()
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result == sent
        assert len(mocked.calls) == 0

    def test_null_key_means_no_data_and_no_call(self, mocked, session):
        sent = {**full_prefetch(), "conditions": None}
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result["conditions"] is None
        assert len(mocked.calls) == 0

    def test_null_key_without_fhir_server_is_fine(self, session):
        sent = {**full_prefetch(), "conditions": None}
        request = hook_request(sent)
        del request["fhirServer"], request["fhirAuthorization"]
        assert resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)["conditions"] is None

    def test_empty_bundle_is_data_not_failure(self, mocked, session):
        sent = {**full_prefetch(), "conditions": searchset()}
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result["conditions"] == searchset()
        assert len(mocked.calls) == 0

    def test_only_template_keys_are_returned(self, mocked, session):
        sent = {**full_prefetch(), "extra": PATIENT}
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert set(result) == set(TEMPLATES)


class TestFetchingWhatIsMissing:
    def test_missing_search_key_is_fetched_as_bundle(self, mocked, session):
        sent = full_prefetch()
        del sent["conditions"]
        mocked.get(f"{SERVER}/Condition", json=searchset(CONDITION))
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result["conditions"] == searchset(CONDITION)
        call = mocked.calls[0].request
        assert call.url == f"{SERVER}/Condition?patient=p1&clinical-status=active"
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"

    def test_missing_read_keys_are_fetched(self, mocked, session):
        mocked.get(f"{SERVER}/Patient/p1", json=PATIENT)
        mocked.get(f"{SERVER}/Practitioner/u1", json={"resourceType": "Practitioner", "id": "u1"})
        sent = {"conditions": searchset(), "encounter": None}
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result["patient"] == PATIENT
        assert result["practitioner"]["id"] == "u1"
        assert len(mocked.calls) == 2

    def test_read_of_absent_resource_is_none(self, mocked, session):
        mocked.get(f"{SERVER}/Patient/p1", status=404)
        sent = {k: v for k, v in full_prefetch().items() if k != "patient"}
        assert (
            resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)["patient"]
            is None
        )

    def test_no_prefetch_at_all_fetches_everything(self, mocked, session):
        mocked.get(f"{SERVER}/Patient/p1", json=PATIENT)
        mocked.get(f"{SERVER}/Condition", json=searchset())
        mocked.get(f"{SERVER}/Encounter/e1", json={"resourceType": "Encounter", "id": "e1"})
        mocked.get(f"{SERVER}/Practitioner/u1", json={"resourceType": "Practitioner", "id": "u1"})
        result = resolve_prefetch(hook_request(), TEMPLATES, SETTINGS, session=session)
        assert all(result[key] is not None for key in TEMPLATES)

    def test_without_authorization_no_token_is_sent(self, mocked, session):
        mocked.get(f"{SERVER}/Condition", json=searchset())
        sent = {k: v for k, v in full_prefetch().items() if k != "conditions"}
        request = hook_request(sent)
        del request["fhirAuthorization"]
        resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert "Authorization" not in mocked.calls[0].request.headers

    @pytest.mark.parametrize(
        "failed",
        [
            OUTCOME,
            searchset(OUTCOME),
            searchset(OUTCOME, OUTCOME),
            "not a resource",
            {"no": "resourceType"},
        ],
    )
    def test_client_failure_is_refetched(self, mocked, session, failed):
        mocked.get(f"{SERVER}/Condition", json=searchset(CONDITION))
        sent = {**full_prefetch(), "conditions": failed}
        result = resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result["conditions"] == searchset(CONDITION)
        assert len(mocked.calls) == 1

    def test_client_failure_without_server_is_412(self, session):
        request = hook_request({**full_prefetch(), "conditions": OUTCOME})
        del request["fhirServer"], request["fhirAuthorization"]
        with pytest.raises(PrefetchUnavailable, match="not prefetched"):
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)

    def test_unresolvable_token_is_no_data(self, mocked, session):
        request = hook_request({k: v for k, v in full_prefetch().items() if k != "encounter"})
        del request["context"]["encounterId"]
        result = resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert result["encounter"] is None
        assert len(mocked.calls) == 0

    def test_user_token_needs_a_practitioner_user(self, mocked, session):
        request = hook_request({k: v for k, v in full_prefetch().items() if k != "practitioner"})
        request["context"]["userId"] = "PractitionerRole/r1"
        assert (
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)["practitioner"] is None
        )
        assert len(mocked.calls) == 0

    def test_unknown_token_is_no_data(self, mocked, session):
        templates = {"recent": "Observation?patient={{context.patientId}}&date=ge{{today()}}"}
        assert resolve_prefetch(hook_request({}), templates, SETTINGS, session=session) == {
            "recent": None
        }

    @pytest.mark.parametrize("patient_id", ["p1&_id=x", "../Practitioner/u1", "a b", "p1?x"])
    def test_unsafe_context_value_is_not_put_in_a_query(self, mocked, session, patient_id):
        request = hook_request({k: v for k, v in full_prefetch().items() if k != "conditions"})
        request["context"]["patientId"] = patient_id
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert caught.value.issues[0].expression == "prefetch.conditions"
        assert len(mocked.calls) == 0


class TestFailures:
    def test_no_fhir_server_names_each_missing_key(self, session):
        request = hook_request({"patient": PATIENT, "encounter": None})
        del request["fhirServer"]
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        error = caught.value
        assert error.status == 412
        assert {i.expression for i in error.issues} == {
            "prefetch.conditions",
            "prefetch.practitioner",
        }
        assert TOKEN not in outcome_json(error)

    def test_server_not_allowed(self, mocked, session):
        request = hook_request({"patient": PATIENT}, fhirServer="https://evil.example/fhir")
        with pytest.raises(FhirServerNotAllowed) as caught:
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert caught.value.status == 412
        assert "prefetch.conditions" in outcome_json(caught.value)
        assert TOKEN not in outcome_json(caught.value)
        assert len(mocked.calls) == 0

    def test_credentials_in_server_url_are_not_repeated(self, session):
        request = hook_request({}, fhirServer="https://user:hunter2@evil.example/fhir")
        with pytest.raises(FhirServerNotAllowed) as caught:
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert "hunter2" not in outcome_json(caught.value)

    def test_not_allowed_server_is_not_checked_when_nothing_is_missing(self, mocked, session):
        request = hook_request(full_prefetch(), fhirServer="https://evil.example/fhir")
        assert resolve_prefetch(request, TEMPLATES, SETTINGS, session=session) == full_prefetch()

    def test_fhir_error_names_only_the_failed_key(self, mocked, session):
        mocked.get(f"{SERVER}/Patient/p1", status=500, body=f"oops {TOKEN}")
        mocked.get(f"{SERVER}/Condition", json=searchset())
        sent = {"encounter": None, "practitioner": None}
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        issues = {i.expression: i.diagnostics for i in caught.value.issues}
        assert set(issues) == {"prefetch.patient"}
        assert "500" in issues["prefetch.patient"]
        assert len(mocked.calls) == 2  # the other key was still fetched; 500 is not retried
        assert TOKEN not in outcome_json(caught.value)
        assert TOKEN not in str(caught.value)

    def test_auth_error_is_412(self, mocked, session):
        mocked.get(f"{SERVER}/Condition", status=401)
        request = hook_request({k: v for k, v in full_prefetch().items() if k != "conditions"})
        with pytest.raises(PrefetchUnavailable, match="could not be fetched") as caught:
            resolve_prefetch(request, TEMPLATES, SETTINGS, session=session)
        assert "401" in caught.value.issues[0].diagnostics


class TestPartialResults:
    """gather_prefetch: a key the server fails to deliver is noted, the others are kept."""

    def test_failed_key_is_unavailable_and_the_others_are_kept(self, mocked, session):
        mocked.get(f"{SERVER}/Condition", status=500, body=f"oops {TOKEN}")
        mocked.get(f"{SERVER}/Encounter/e1", json={"resourceType": "Encounter", "id": "e1"})
        sent = {"patient": PATIENT, "practitioner": None}
        result = gather_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert set(result.unavailable) == {"conditions"}
        assert "500" in result.unavailable["conditions"]
        assert TOKEN not in result.unavailable["conditions"]
        assert result.values["conditions"] is None
        assert result.values["encounter"]["id"] == "e1"
        assert result.available == {"patient", "encounter", "practitioner"}
        (issue,) = result.issues()
        assert issue.expression == "prefetch.conditions"

    def test_nothing_missing_is_nothing_unavailable(self, mocked, session):
        result = gather_prefetch(
            hook_request(full_prefetch()), TEMPLATES, SETTINGS, session=session
        )
        assert result.unavailable == {}
        assert result.values == full_prefetch()

    def test_unexpected_exception_makes_the_key_unavailable(self, mocked, session):
        mocked.get(f"{SERVER}/Condition", body=RuntimeError(f"bug {TOKEN}"))
        sent = {k: v for k, v in full_prefetch().items() if k != "conditions"}
        result = gather_prefetch(hook_request(sent), TEMPLATES, SETTINGS, session=session)
        assert result.unavailable == {"conditions": "fetching failed (RuntimeError)"}

    def test_request_problems_are_still_412(self, session):
        request = hook_request({"patient": PATIENT})
        del request["fhirServer"]
        with pytest.raises(PrefetchUnavailable, match="not prefetched"):
            gather_prefetch(request, TEMPLATES, SETTINGS, session=session)


class TestFlatten:
    def test_collects_resources_from_bundles_and_single_values(self):
        other = {"resourceType": "Condition", "id": "c2"}
        prefetch = {
            "patient": PATIENT,
            "conditions": searchset(CONDITION, other, OUTCOME),
            "again": searchset(CONDITION),
            "none": None,
            "failed": OUTCOME,
            "junk": "text",
        }
        assert flatten(prefetch) == [PATIENT, CONDITION, other]

    def test_same_id_of_different_types_is_kept(self):
        a = {"resourceType": "Condition", "id": "x"}
        b = {"resourceType": "Observation", "id": "x"}
        assert flatten({"a": searchset(a), "b": searchset(b)}) == [a, b]

    def test_malformed_entries_are_skipped(self):
        bundle = {
            "resourceType": "Bundle",
            "entry": [None, {}, {"resource": "x"}, {"resource": PATIENT}],
        }
        assert flatten({"k": bundle}) == [PATIENT]


# -- against a real loopback HTTP server ---------------------------------------------------------

STUB_SETTINGS = Settings(env="test", fhir_timeout_seconds=0.5)


@pytest.fixture
def stub():
    with FhirStub(token=TOKEN) as server:
        yield server


def stub_request(stub: FhirStub, prefetch: dict) -> dict:
    return hook_request(prefetch, fhirServer=stub.base_url)


class TestAgainstLoopbackServer:
    def test_missing_key_is_fetched_with_the_bearer_token(self, stub, session):
        stub.add("Condition?patient=p1&clinical-status=active", stub.bundle([CONDITION]))
        sent = {k: v for k, v in full_prefetch().items() if k != "conditions"}
        result = resolve_prefetch(
            stub_request(stub, sent), TEMPLATES, STUB_SETTINGS, session=session
        )
        assert [e["resource"] for e in result["conditions"]["entry"]] == [CONDITION]
        (call,) = stub.requests
        assert call.header("Authorization") == f"Bearer {TOKEN}"
        assert call.header("Accept") == "application/fhir+json"

    def test_paged_search_is_collected(self, stub, session):
        conditions = [{"resourceType": "Condition", "id": f"c{n}"} for n in range(5)]
        stub.add_paged("Condition?patient=p1&clinical-status=active", conditions, page_size=2)
        sent = {k: v for k, v in full_prefetch().items() if k != "conditions"}
        result = resolve_prefetch(
            stub_request(stub, sent), TEMPLATES, STUB_SETTINGS, session=session
        )
        assert [e["resource"]["id"] for e in result["conditions"]["entry"]] == [
            "c0",
            "c1",
            "c2",
            "c3",
            "c4",
        ]
        assert len(stub.requests) == 3
        assert all(r.header("Authorization") == f"Bearer {TOKEN}" for r in stub.requests)

    def test_wrong_token_is_412(self, stub, session):
        stub.add("Patient/p1", PATIENT)
        request = stub_request(stub, {k: v for k, v in full_prefetch().items() if k != "patient"})
        request["fhirAuthorization"]["access_token"] = "wrong-token"
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(request, TEMPLATES, STUB_SETTINGS, session=session)
        assert "401" in caught.value.issues[0].diagnostics
        assert "wrong-token" not in outcome_json(caught.value)

    def test_slow_server_gives_412_within_the_timeout(self, stub, session):
        stub.add("Condition?patient=p1&clinical-status=active", stub.bundle([]), delay=5)
        stub.add("Encounter/e1", {"resourceType": "Encounter", "id": "e1"}, delay=5)
        sent = {"patient": PATIENT, "practitioner": None}
        started = time.monotonic()
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(stub_request(stub, sent), TEMPLATES, STUB_SETTINGS, session=session)
        elapsed = time.monotonic() - started
        assert elapsed < STUB_SETTINGS.fhir_timeout_seconds + 0.5
        assert "within" in caught.value.issues[0].diagnostics
        assert {i.expression for i in caught.value.issues} == {
            "prefetch.conditions",
            "prefetch.encounter",
        }

    def test_total_time_is_bounded_by_the_budget(self, stub, session):
        # Each answer takes 0.9 s, inside the 1.5 s budget; the first MAX_CONCURRENT_FETCHES
        # run at once and arrive, the rest start at 0.9 s and the budget ends them at 1.5 s.
        # (Seconds, not tenths: a busy CI machine must not stall the first six past the budget.)
        budget = STUB_SETTINGS.with_overrides(fhir_timeout_seconds=1.5)
        count = MAX_CONCURRENT_FETCHES + 2
        templates = {f"k{n}": f"Observation?code=c{n}" for n in range(count)}
        for n in range(count):
            stub.add(f"Observation?code=c{n}", stub.bundle([]), delay=0.9)
        started = time.monotonic()
        result = gather_prefetch(stub_request(stub, {}), templates, budget, session=session)
        elapsed = time.monotonic() - started
        assert elapsed < budget.fhir_timeout_seconds + 0.2
        assert len(result.available) == MAX_CONCURRENT_FETCHES
        assert len(result.unavailable) == 2
        assert all(
            "budget" in why or "within" in why or "did not finish" in why
            for why in result.unavailable.values()
        )

    def test_trickling_server_is_cut_off(self, stub, session):
        # Pieces come 0.4 s apart, inside the 0.5 s socket timeout: only the whole-call limit
        # stops it, and it must not wait for the piece due at 0.8 s.
        stub.add("Patient/p1", {**PATIENT, "padding": "x" * 200}, trickle=0.4)
        request = stub_request(stub, {k: v for k, v in full_prefetch().items() if k != "patient"})
        started = time.monotonic()
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(request, TEMPLATES, STUB_SETTINGS, session=session)
        assert time.monotonic() - started < STUB_SETTINGS.fhir_timeout_seconds + 0.2
        assert "did not finish" in caught.value.issues[0].diagnostics

    def test_pooled_connection_is_reused(self, stub, session):
        stub.add("Patient/p1", PATIENT)
        sent = {"conditions": None, "practitioner": None, "encounter": None}
        for _ in range(2):  # two hook calls, one after the other
            resolve_prefetch(stub_request(stub, sent), TEMPLATES, STUB_SETTINGS, session=session)
        ports = {r.client_port for r in stub.requests}
        assert len(stub.requests) == 2
        assert len(ports) == 1  # one TCP connection for both calls

    def test_dropped_connection_is_412(self, stub, session):
        stub.add("Patient/p1", drop=True)
        request = stub_request(stub, {k: v for k, v in full_prefetch().items() if k != "patient"})
        # a budget a busy machine cannot exhaust: the drop, not the clock, must decide
        roomy = STUB_SETTINGS.with_overrides(fhir_timeout_seconds=3.0)
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(request, TEMPLATES, roomy, session=session)
        assert "could not be reached" in caught.value.issues[0].diagnostics

    def test_non_json_answer_is_412(self, stub, session):
        stub.add("Patient/p1", raw="<html>login</html>", content_type="text/html")
        request = stub_request(stub, {k: v for k, v in full_prefetch().items() if k != "patient"})
        with pytest.raises(PrefetchUnavailable, match="could not be fetched"):
            resolve_prefetch(request, TEMPLATES, STUB_SETTINGS, session=session)

    def test_connection_refused_is_412(self, session):
        closed = FhirStub()
        url = closed.base_url
        closed.stop()  # nothing listens on the port any more
        request = hook_request({}, fhirServer=url)
        with pytest.raises(PrefetchUnavailable):
            resolve_prefetch(
                request, {"patient": TEMPLATES["patient"]}, STUB_SETTINGS, session=session
            )

    def test_loopback_server_is_refused_in_production(self, stub, session):
        production = Settings(env="production", fhir_timeout_seconds=0.5)
        with pytest.raises(FhirServerNotAllowed):
            resolve_prefetch(stub_request(stub, {}), TEMPLATES, production, session=session)
        assert stub.requests == []


def test_supplementary_keys_left_out_without_fhir_server_are_no_data():
    sent = {key: value for key, value in full_prefetch().items() if key != "conditions"}
    request = hook_request(sent)
    del request["fhirServer"]
    with pytest.raises(PrefetchUnavailable):
        gather_prefetch(request, TEMPLATES, SETTINGS)  # a core key: 412 as before
    result = gather_prefetch(request, TEMPLATES, SETTINGS, supplementary=frozenset({"conditions"}))
    assert result.values["conditions"] is None
    assert result.unavailable == {}


def test_supplementary_keys_are_fetched_when_a_fhir_server_is_given(mocked):
    sent = {key: value for key, value in full_prefetch().items() if key != "conditions"}
    mocked.get(f"{SERVER}/Condition", json=searchset(CONDITION))
    result = gather_prefetch(
        hook_request(sent), TEMPLATES, SETTINGS, supplementary=frozenset({"conditions"})
    )
    assert result.values["conditions"]["entry"][0]["resource"]["id"] == "c1"

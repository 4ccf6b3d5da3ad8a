"""FHIR faults over HTTP: a hook call whose missing prefetch keys meet a failing FHIR server.

Every call is timed: it must answer (200 degraded, or 412 when nothing usable was obtained)
within the time budget (CDS_FHIR_TIMEOUT_SECONDS, 1.5 s by default) plus 0.5 s, never 500.
The FHIR server is the real loopback stub of tests/support/fhir_stub.py; retries are counted
from the requests it recorded.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from cds_service.config import Settings
from cds_service.fhir.prefetch import MAX_CONCURRENT_FETCHES
from tests.support.fhir_stub import Canned, FhirStub, _route_key
from tests.support.hook_requests import PREFETCH_KEYS, SELECT, decisions, sample_request

TOKEN = "stub-token"
PATIENT_ID = "sample-patient-1"
ORDER = "ServiceRequest/draft-mri-1"
BUDGET = Settings().fhir_timeout_seconds  # the shipped default
SLACK = 1.0  # processing on top of the FHIR budget, on a busy 2-core CI machine
ROUTES = {
    "patient": f"Patient/{PATIENT_ID}",
    "conditions": f"Condition?patient={PATIENT_ID}",
    "observations": f"Observation?patient={PATIENT_ID}",
    "procedures": f"Procedure?patient={PATIENT_ID}",
    "medicationStatements": f"MedicationStatement?patient={PATIENT_ID}",
    "medicationRequests": f"MedicationRequest?patient={PATIENT_ID}",
    "serviceRequests": f"ServiceRequest?patient={PATIENT_ID}",
    "imagingStudies": f"ImagingStudy?patient={PATIENT_ID}",
    "diagnosticReports": f"DiagnosticReport?patient={PATIENT_ID}",
    "episodesOfCare": f"EpisodeOfCare?patient={PATIENT_ID}",
    "encounters": f"Encounter?patient={PATIENT_ID}",
}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "search failed"}],
}
CAUDA_EQUINA = {
    "resourceType": "Condition",
    "id": "cauda-1",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "code": {
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "192970008",
                "display": "Cauda equina syndrome",
            }
        ]
    },
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
}


class ScriptedStub(FhirStub):
    """The stub, plus routes that answer differently on successive requests."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scripts: dict[Any, list[Canned]] = {}

    def add_sequence(self, route: str, answers: list[Canned]) -> None:
        """Answer route with answers[0], then answers[1], ...; the last one repeats."""
        path, _, query = route.partition("?")
        with self._lock:
            self._scripts[_route_key(path, query)] = list(answers)

    def _lookup(self, path: str, query: str) -> Canned | None:
        with self._lock:
            script = self._scripts.get(_route_key(path, query))
            if script:
                return script.pop(0) if len(script) > 1 else script[0]
        return super()._lookup(path, query)


@pytest.fixture
def stub():
    with ScriptedStub(token=TOKEN) as server:
        yield server


def answer(value: Any) -> dict[str, Any]:
    """The stub's answer for a prefetch value of the sample request (None: an empty Bundle)."""
    return value if value is not None else FhirStub.bundle([])


def hook_call(client, stub: FhirStub, missing, *, conditions_extra=()) -> tuple[Any, float]:
    """POST the sample order-select without the `missing` keys; (response, seconds taken)."""
    request = copy.deepcopy(sample_request())
    if conditions_extra:
        request["prefetch"]["conditions"].setdefault("entry", []).extend(
            {"resource": r} for r in conditions_extra
        )
    for key in missing:
        request["prefetch"].pop(key)
    request["fhirServer"] = stub.base_url
    request["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "lumbar-cds",
    }
    started = time.monotonic()
    response = client.post(SELECT, json=request, headers={"Accept-Language": "en"})
    elapsed = time.monotonic() - started
    print(f"hook call answered {response.status_code} in {elapsed:.3f} s")
    assert response.status_code in (200, 412), response.get_data(as_text=True)[:500]
    assert elapsed < BUDGET + SLACK, f"took {elapsed:.2f} s"
    assert TOKEN not in response.get_data(as_text=True)
    return response, elapsed


def entry(response) -> dict[str, Any]:
    assert response.status_code == 200
    return decisions(response.get_json())[ORDER]


def requests_for(stub: FhirStub, key: str) -> int:
    return len(stub.requests_to(ROUTES[key].split("?")[0]))


# -- each fault on its own: a 200 with a degraded decision ----------------------------------------


def test_baseline_all_fetched_is_not_indicated(client, stub):
    original = sample_request()["prefetch"]
    stub.add(ROUTES["observations"], original["observations"])
    response, _ = hook_call(client, stub, ["observations"])
    assert entry(response)["decision"] == "not-indicated"


def test_server_slower_than_the_budget_degrades_in_time(client, stub):
    stub.add(ROUTES["observations"], FhirStub.bundle([]), delay=BUDGET + 5)
    response, elapsed = hook_call(client, stub, ["observations"])
    result = entry(response)
    assert result["decision"] == "insufficient-data"
    assert result.get("missing", []) == ["fhir:observations"]
    assert elapsed >= BUDGET - 0.1  # it did wait for the server, as long as the budget allows
    assert requests_for(stub, "observations") == 1  # a timeout is not retried


@pytest.mark.parametrize(
    ("key", "family", "label"),
    [
        ("episodesOfCare", "fhir:episodes-of-care", "(EpisodeOfCare)"),
        ("encounters", "fhir:encounters", "(Encounter)"),
    ],
)
def test_gp_episodes_or_consults_not_delivered_degrade_a_not_indicated(
    client, stub, key, family, label
):
    # they may hold an earlier onset of the episode, which could make the scan indicated
    stub.add(ROUTES[key], OUTCOME, status=500)
    response, _ = hook_call(client, stub, [key])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == ("insufficient-data", [family])
    (card,) = response.get_json()["cards"]
    assert label in card["detail"]


def test_gp_episodes_left_out_without_fhir_server_are_no_data(client):
    request = copy.deepcopy(sample_request())
    for key in ("episodesOfCare", "encounters"):
        request["prefetch"].pop(key)
    request.pop("fhirServer", None)
    response = client.post(SELECT, json=request, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert decisions(response.get_json())[ORDER]["decision"] == "not-indicated"


def test_500_degrades_without_retry(client, stub):
    stub.add(ROUTES["procedures"], OUTCOME, status=500)
    response, _ = hook_call(client, stub, ["procedures"])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == (
        "insufficient-data",
        ["fhir:procedures"],
    )
    assert requests_for(stub, "procedures") == 1


def test_503_then_success_is_retried_into_the_full_decision(client, stub):
    original = sample_request()["prefetch"]
    stub.add_sequence(
        ROUTES["observations"],
        [Canned(OUTCOME, status=503), Canned(original["observations"])],
    )
    response, _ = hook_call(client, stub, ["observations"])
    result = entry(response)
    assert result["decision"] == "not-indicated"
    assert result.get("missing", []) == []
    assert "data-unavailable" not in {c["id"] for c in result["checked"]}
    assert requests_for(stub, "observations") == 2


def test_503_twice_degrades_after_one_retry(client, stub):
    stub.add(ROUTES["observations"], OUTCOME, status=503)
    response, _ = hook_call(client, stub, ["observations"])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == (
        "insufficient-data",
        ["fhir:observations"],
    )
    assert requests_for(stub, "observations") == 2


@pytest.mark.parametrize("status", [502, 504])
def test_other_gateway_errors_are_retried(client, stub, status):
    original = sample_request()["prefetch"]
    stub.add_sequence(
        ROUTES["conditions"], [Canned(None, status=status), Canned(original["conditions"])]
    )
    response, _ = hook_call(client, stub, ["conditions"])
    assert entry(response)["decision"] == "not-indicated"
    assert requests_for(stub, "conditions") == 2


def test_no_retry_when_the_budget_is_nearly_spent(client, stub):
    # The 503 comes after 80 % of the budget: a retry could not finish, so none is made.
    stub.add(ROUTES["observations"], OUTCOME, status=503, delay=BUDGET * 0.8)
    response, _ = hook_call(client, stub, ["observations"])
    assert entry(response)["decision"] == "insufficient-data"
    assert requests_for(stub, "observations") == 1


def test_closed_connection_degrades_after_one_retry(client, stub):
    stub.add(ROUTES["medicationStatements"], drop=True)
    response, _ = hook_call(client, stub, ["medicationStatements"])
    result = entry(response)
    assert result["decision"] == "insufficient-data"
    assert result.get("missing", []) == ["fhir:medication-statements"]
    assert requests_for(stub, "medicationStatements") == 2


def test_non_json_answer_degrades(client, stub):
    stub.add(ROUTES["serviceRequests"], raw=b"<html>Log in</html>", content_type="text/html")
    response, _ = hook_call(client, stub, ["serviceRequests"])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == (
        "insufficient-data",
        ["fhir:service-requests"],
    )
    assert requests_for(stub, "serviceRequests") == 1


@pytest.mark.parametrize("status", [400, 403, 422, 404, 200])
def test_operation_outcome_answer_degrades(client, stub, status):
    stub.add(ROUTES["conditions"], OUTCOME, status=status)
    response, _ = hook_call(client, stub, ["conditions"])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == (
        "insufficient-data",
        ["fhir:conditions"],
    )
    assert requests_for(stub, "conditions") == 1


def test_trickling_server_is_cut_off_at_the_budget(client, stub):
    bundle = FhirStub.bundle([{"resourceType": "Procedure", "id": f"x{n}"} for n in range(20)])
    stub.add(ROUTES["procedures"], bundle, trickle=0.2)
    response, _ = hook_call(client, stub, ["procedures"])
    assert entry(response).get("missing", []) == ["fhir:procedures"]


def test_prior_imaging_unavailable_leaves_not_indicated(client, stub):
    # ImagingStudies can only confirm a not-indicated (repeat imaging): the decision stands.
    stub.add(ROUTES["imagingStudies"], OUTCOME, status=500)
    response, _ = hook_call(client, stub, ["imagingStudies"])
    result = entry(response)
    assert (result["decision"], result.get("missing", [])) == ("not-indicated", [])
    assert {"id": "data-unavailable", "status": "unknown", "reason": "fhir-data-unavailable"} in (
        result["checked"]
    )


# -- what the degraded decision says --------------------------------------------------------------


def test_card_lists_every_family_that_could_not_be_fetched(client, stub):
    stub.add(ROUTES["observations"], drop=True)
    stub.add(ROUTES["procedures"], OUTCOME, status=500)
    stub.add(ROUTES["medicationRequests"], raw=b"nope", content_type="text/plain")
    stub.add(ROUTES["diagnosticReports"], OUTCOME, status=400)
    stub.add(ROUTES["serviceRequests"], FhirStub.bundle([]), delay=BUDGET + 5)
    keys = ["observations", "procedures", "medicationRequests", "diagnosticReports"]
    response, _ = hook_call(client, stub, [*keys, "serviceRequests"])
    body = response.get_json()
    result = decisions(body)[ORDER]
    assert result["decision"] == "insufficient-data"
    assert result.get("missing", []) == [
        "fhir:diagnostic-reports",
        "fhir:medication-requests",
        "fhir:observations",
        "fhir:procedures",
        "fhir:service-requests",
    ]
    assert result["criteria"] == ["data-unavailable"]
    (card,) = body["cards"]
    assert card["indicator"] == "info"
    assert "not all record data could be fetched" in card["summary"]
    for family in ("Observation", "Procedure", "MedicationRequest", "DiagnosticReport"):
        assert "Could not be fetched from the record: " in card["detail"]
        assert f"({family})" in card["detail"]
    assert "systemActions" not in body  # no rating on insufficient data


def test_urgent_on_the_conditions_obtained_stays_urgent(client, stub):
    stub.add(ROUTES["observations"], OUTCOME, status=503)
    response, _ = hook_call(client, stub, ["observations"], conditions_extra=[CAUDA_EQUINA])
    result = entry(response)
    assert result["decision"] == "urgent"
    assert "red-flag" in result["criteria"]
    assert result.get("missing", []) == []
    assert {"id": "data-unavailable", "status": "unknown", "reason": "fhir-data-unavailable"} in (
        result["checked"]
    )
    assert requests_for(stub, "observations") == 2


def test_same_patient_without_the_red_flag_is_not_called_not_indicated(client, stub):
    stub.add(ROUTES["observations"], OUTCOME, status=503)
    response, _ = hook_call(client, stub, ["observations"])
    result = entry(response)
    assert result["decision"] == "insufficient-data"
    assert "fhir:observations" in result.get("missing", [])


# -- 412: nothing usable --------------------------------------------------------------------------


def test_patient_unavailable_is_412_naming_it(client, stub):
    stub.add(ROUTES["patient"], OUTCOME, status=503)
    original = sample_request()["prefetch"]
    stub.add(ROUTES["observations"], original["observations"])
    response, _ = hook_call(client, stub, ["patient", "observations"])
    assert response.status_code == 412
    issues = response.get_json()["issue"]
    assert [i["expression"] for i in issues] == [["prefetch.patient"]]
    assert "503" in issues[0]["diagnostics"]


def test_every_key_failing_is_412(client, stub):
    for route in ROUTES.values():
        stub.add(route, drop=True)
    response, _ = hook_call(client, stub, PREFETCH_KEYS)
    assert response.status_code == 412
    expressions = {e for i in response.get_json()["issue"] for e in i["expression"]}
    assert expressions == {f"prefetch.{key}" for key in PREFETCH_KEYS}


def test_every_clinical_key_failing_is_412_even_with_the_patient(client, stub):
    clinical = [key for key in PREFETCH_KEYS if key != "patient"]
    for key in clinical:
        stub.add(ROUTES[key], OUTCOME, status=500)
    response, _ = hook_call(client, stub, clinical)
    assert response.status_code == 412


def test_dead_server_is_412_in_time(client, stub):
    stub.stop()  # nothing listens on the port any more
    response, _ = hook_call(client, stub, PREFETCH_KEYS)
    assert response.status_code == 412


# -- concurrency -----------------------------------------------------------------------------------


def test_every_slow_key_is_fetched_concurrently(client, stub):
    delay = 0.3
    original = sample_request()["prefetch"]
    for key in PREFETCH_KEYS:
        stub.add(ROUTES[key], answer(original[key]), delay=delay)
    response, elapsed = hook_call(client, stub, PREFETCH_KEYS)
    result = entry(response)
    assert result["decision"] == "not-indicated"  # every key arrived
    assert len(stub.requests) == len(PREFETCH_KEYS)
    rounds = -(-len(PREFETCH_KEYS) // MAX_CONCURRENT_FETCHES)
    assert elapsed < rounds * delay + 0.6 < len(PREFETCH_KEYS) * delay
    print(f"{len(PREFETCH_KEYS)} keys x {delay} s delay: {elapsed:.2f} s")

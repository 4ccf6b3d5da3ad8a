"""Service calls over HTTP: order-select, order-sign, selections, scope, prefetch and 412."""

from __future__ import annotations

import copy
import time
import uuid

import pytest

from cds_service.config import Settings
from tests.support.hook_requests import (
    PREFETCH_KEYS,
    SELECT,
    SIGN,
    decisions,
    ratings,
    sample_request,
    service_request,
    with_orders,
)

CHEST_XRAY = service_request("draft-chest", cpt="71046", text="X thorax")
LUMBAR_MRI = service_request("draft-mri", cpt="72148")
LUMBAR_XRAY_TEXT = service_request("draft-xray", text="X-LWK staand")


def test_order_select_returns_one_card_and_a_rating(client):
    response = client.post(SELECT, json=sample_request())
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["cards"]) == 1
    card = body["cards"][0]
    assert card["uuid"] and card["source"]["label"]
    entry = decisions(body)["ServiceRequest/draft-mri-1"]
    assert entry["decision"] == "not-indicated"
    assert entry["card"] == card["uuid"]
    assert card["indicator"] == "warning"
    assert ratings(body) == {"ServiceRequest/draft-mri-1": "not-appropriate"}
    # The Sandbox reads only extension.systemActions: both places carry the same actions.
    assert body["extension"]["systemActions"] == body["systemActions"]
    action = body["systemActions"][0]
    assert action["type"] == "update" and action["description"]
    assert (
        action["resource"]["code"]
        == sample_request()["context"]["draftOrders"]["entry"][0]["resource"]["code"]
    )


def test_order_sign_evaluates_every_lumbar_draft_order(client):
    request = with_orders(sample_request(), [LUMBAR_MRI, LUMBAR_XRAY_TEXT], hook="order-sign")
    body = client.post(SIGN, json=request).get_json()
    assert set(decisions(body)) == {"ServiceRequest/draft-mri", "ServiceRequest/draft-xray"}
    assert len(body["cards"]) == 2
    assert {d["modality"] for d in decisions(body).values()} == {"mri", "xray"}


def test_order_select_evaluates_only_the_selections(client):
    request = with_orders(
        sample_request(),
        [LUMBAR_MRI, LUMBAR_XRAY_TEXT],
        selections=["ServiceRequest/draft-xray"],
    )
    body = client.post(SELECT, json=request).get_json()
    assert set(decisions(body)) == {"ServiceRequest/draft-xray"}
    assert len(body["cards"]) == 1


def test_out_of_scope_order_gets_no_card_and_no_rating(client):
    request = with_orders(sample_request(), [CHEST_XRAY])
    body = client.post(SELECT, json=request).get_json()
    assert body == {"cards": []}


def test_mixed_orders_on_sign_rate_only_the_lumbar_one(client):
    request = with_orders(sample_request(), [CHEST_XRAY, LUMBAR_MRI], hook="order-sign")
    body = client.post(SIGN, json=request).get_json()
    assert set(ratings(body)) == {"ServiceRequest/draft-mri"}
    assert len(body["cards"]) == 1


def test_out_of_scope_orders_need_no_patient_data(client):
    request = with_orders(sample_request(), [CHEST_XRAY])
    del request["prefetch"]
    assert client.post(SELECT, json=request).get_json() == {"cards": []}


def _without_prefetch(request, *keys):
    request = copy.deepcopy(request)
    for key in keys:
        request["prefetch"].pop(key)
    return request


def test_missing_prefetch_is_filled_from_the_fhir_server_with_the_bearer_token(client, fhir_stub):
    request = _without_prefetch(sample_request(), "conditions", "patient")
    original = sample_request()["prefetch"]
    fhir_stub.add("Patient/sample-patient-1", original["patient"])
    fhir_stub.add("Condition?patient=sample-patient-1", original["conditions"])
    request["fhirServer"] = fhir_stub.base_url
    request["fhirAuthorization"] = {
        "access_token": "stub-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "lumbar-cds",
    }
    body = client.post(SELECT, json=request).get_json()
    assert decisions(body)["ServiceRequest/draft-mri-1"]["decision"] == "not-indicated"
    paths = sorted(r.path for r in fhir_stub.requests)
    assert paths == ["Condition", "Patient/sample-patient-1"]
    assert all(r.header("Authorization") == "Bearer stub-token" for r in fhir_stub.requests)


def test_missing_prefetch_without_fhir_server_is_412_naming_the_key(client):
    request = _without_prefetch(sample_request(), "observations")
    response = client.post(SELECT, json=request)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("prefetch.observations" in i.get("expression", []) for i in outcome["issue"])


def test_failing_fhir_server_degrades_the_decision(client, fhir_stub):
    # More in tests/functional/test_fhir_faults.py.
    request = _without_prefetch(sample_request(), "procedures")
    fhir_stub.add("Procedure?patient=sample-patient-1", status=500)
    request["fhirServer"] = fhir_stub.base_url
    response = client.post(SELECT, json=request)
    assert response.status_code == 200
    entry = decisions(response.get_json())["ServiceRequest/draft-mri-1"]
    assert entry["decision"] == "insufficient-data"
    assert entry["missing"] == ["fhir:procedures"]
    assert "stub-token" not in response.get_data(as_text=True)


def test_absent_fhir_server_is_412_in_time(client, fhir_stub):
    # Without the Patient nothing usable is left: 412 (README "Prefetch").
    request = _without_prefetch(sample_request(), "procedures", "patient")
    request["fhirServer"] = fhir_stub.base_url
    fhir_stub.stop()  # nothing listens on the port any more
    started = time.monotonic()
    response = client.post(SELECT, json=request)
    assert response.status_code == 412
    assert time.monotonic() - started < 2.0


def test_fhir_server_not_on_the_allow_list_is_refused(app, fhir_stub):
    from cds_service.app import create_app

    production_like = Settings(
        env="production", public_base_url="https://cds.example.org", auth_enabled=False
    )
    strict = create_app(production_like).test_client()
    request = _without_prefetch(sample_request(), "procedures")
    request["fhirServer"] = fhir_stub.base_url
    response = strict.post(SELECT, json=request)
    assert response.status_code == 412
    assert fhir_stub.requests == []


def test_null_prefetch_means_no_data_and_no_fetch(client, fhir_stub):
    request = sample_request()
    for key in PREFETCH_KEYS:
        if key != "patient":
            request["prefetch"][key] = None
    request["fhirServer"] = fhir_stub.base_url
    body = client.post(SELECT, json=request).get_json()
    assert fhir_stub.requests == []
    # With no Conditions at all there is no back-pain episode to judge.
    assert decisions(body)["ServiceRequest/draft-mri-1"]["decision"] == "insufficient-data"
    assert ratings(body) == {}


def test_sandbox_quirks_are_tolerated(client):
    request = sample_request()
    request.pop("fhirServer", None)
    context = request["context"]
    context["draftOrders"].pop("type")
    order = context["draftOrders"]["entry"][0]["resource"]
    order["intent"] = "plan"
    order["reasonCode"] = []
    order["code"]["coding"].append({})
    context.pop("encounterId", None)
    response = client.post(SELECT, json=request)
    assert response.status_code == 200
    body = response.get_json()
    # The rating update carries the order without the empty elements the spec forbids.
    resource = body["systemActions"][0]["resource"]
    assert "reasonCode" not in resource
    assert {} not in resource["code"]["coding"]


def test_sandbox_initial_render_with_empty_coding_gets_no_card(client):
    request = with_orders(
        sample_request(),
        [
            {
                "resourceType": "ServiceRequest",
                "id": "example-request-id",
                "status": "draft",
                "intent": "plan",
                "code": {"coding": [{}]},
                "reasonCode": [],
            }
        ],
    )
    response = client.post(SELECT, json=request)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_prefetch_patient_must_match_the_context(client):
    request = sample_request()
    request["prefetch"]["patient"]["id"] = "someone-else"
    response = client.post(SELECT, json=request)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["prefetch.patient.id"]


@pytest.mark.parametrize(
    "header, marker", [("en", "not indicated"), ("nl", "niet geïndiceerd"), ("fr, en;q=0.5", "not")]
)
def test_accept_language_chooses_the_card_language(client, header, marker):
    response = client.post(SELECT, json=sample_request(), headers={"Accept-Language": header})
    assert marker in response.get_json()["cards"][0]["summary"]


def test_hook_instance_is_echoed_nowhere_but_each_call_gets_new_uuids(client):
    first = client.post(SELECT, json=sample_request()).get_json()
    second = client.post(SELECT, json=sample_request()).get_json()
    assert first["cards"][0]["uuid"] != second["cards"][0]["uuid"]
    uuid.UUID(first["cards"][0]["uuid"])

"""Every client mistake gets a 4xx with an OperationOutcome naming the JSON path; never a 500."""

from __future__ import annotations

import pytest

from cds_service.config import Settings
from tests.support.hook_requests import SELECT, SIGN, sample_request


def _issue_paths(response):
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [p for issue in outcome["issue"] for p in issue.get("expression", [])]


def test_unknown_service_is_404(client):
    response = client.post("/cds-services/no-such-service", json=sample_request())
    assert response.status_code == 404
    assert _issue_paths(response) == ["id"]


def test_malformed_json_is_400(client):
    response = client.post(
        SELECT, data=b'{"hook": "order-select",', content_type="application/json"
    )
    assert response.status_code == 400
    assert "malformed JSON" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("body", [b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(client, body):
    response = client.post(SELECT, data=body, content_type="application/json")
    assert response.status_code == 400
    assert _issue_paths(response) == ["$"]


def test_wrong_hook_for_the_service_is_400(client):
    response = client.post(SIGN, json=sample_request())
    assert response.status_code == 400
    assert _issue_paths(response) == ["hook"]


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda r: r.pop("hookInstance"), "hookInstance"),
        (lambda r: r["context"].pop("patientId"), "context.patientId"),
        (lambda r: r["context"].pop("selections"), "context.selections"),
        (lambda r: r["context"].__setitem__("selections", []), "context.selections"),
        (
            lambda r: r["context"].__setitem__("selections", ["not a reference"]),
            "context.selections[0]",
        ),
        (
            lambda r: r["context"].__setitem__("draftOrders", {"resourceType": "Patient"}),
            "context.draftOrders.resourceType",
        ),
        (
            lambda r: r["context"]["draftOrders"]["entry"][0]["resource"].pop("resourceType"),
            "context.draftOrders.entry[0].resource.resourceType",
        ),
        (lambda r: r.__setitem__("prefetch", {"conditions": "nope"}), "prefetch.conditions"),
        (
            lambda r: r.__setitem__(
                "fhirServer",
                {
                    "access_token": "x",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "c",
                },
            ),
            "fhirServer",
        ),
        (lambda r: r.__setitem__("fhirServer", "ftp://example.org"), "fhirServer"),
        (lambda r: r.pop("context"), "context"),
    ],
    ids=[
        "no-hookInstance",
        "no-patientId",
        "no-selections",
        "empty-selections",
        "bad-selection",
        "draftOrders-not-bundle",
        "entry-without-resourceType",
        "prefetch-not-object",
        "fhirAuthorization-without-fhirServer",
        "fhirServer-not-http",
        "no-context",
    ],
)
def test_schema_violations_are_400_naming_the_path(client, mutate, path):
    request = sample_request()
    mutate(request)
    response = client.post(SELECT, json=request)
    assert response.status_code == 400
    assert path in _issue_paths(response)


def test_selection_naming_no_draft_order_is_400(client):
    request = sample_request()
    request["context"]["selections"] = ["ServiceRequest/missing"]
    response = client.post(SELECT, json=request)
    assert response.status_code == 400
    assert _issue_paths(response) == ["context.selections[0]"]


def test_body_too_large_is_413():
    from cds_service.app import create_app
    from tests.conftest import ContractClient

    app = create_app(Settings(env="test", max_request_bytes=2048, auth_enabled=False))
    app.test_client_class = ContractClient
    request = sample_request()
    response = app.test_client().post(SELECT, json=request)
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_path_and_method_get_operation_outcomes(app):
    from flask.testing import FlaskClient

    app.test_client_class = FlaskClient  # undocumented paths are outside the OpenAPI contract
    plain = app.test_client()
    assert plain.get("/nowhere").get_json()["resourceType"] == "OperationOutcome"
    response = plain.put(SELECT, json={})
    assert response.status_code == 405
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_wrongly_typed_values_deep_in_the_request_never_cause_500(client):
    request = sample_request()
    request["prefetch"]["conditions"]["entry"] = [
        {"resource": {"resourceType": "Condition", "code": 7, "onsetDateTime": []}},
        "junk",
        {"resource": None},
    ]
    request["prefetch"]["observations"] = {"resourceType": "Bundle", "entry": "oops"}
    response = client.post(SELECT, json=request)
    assert response.status_code in (200, 400)

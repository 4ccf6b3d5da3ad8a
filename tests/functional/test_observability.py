"""Security headers, request ids, /readyz, /metrics and the JSON request log."""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.observability import metrics
from cds_service.observability.logs import JsonFormatter
from tests.conftest import ContractClient
from tests.support.hook_requests import SELECT, sample_request

JSON_PATHS = ["/cds-services", "/healthz", "/readyz"]


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("path", JSON_PATHS)
def test_json_responses_carry_the_security_headers(client, path):
    response = client.get(path)
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "Strict-Transport-Security" not in headers  # http base URL: HSTS would be ignored


def test_hook_answers_and_errors_are_not_cached(client):
    ok = client.post(SELECT, json=sample_request())
    bad = client.post(SELECT, data=b"{", content_type="application/json")
    unknown = client.post("/cds-services/no-such-service", json=sample_request())
    assert (ok.status_code, bad.status_code, unknown.status_code) == (200, 400, 404)
    for response in (ok, bad, unknown):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_patient_page_keeps_its_own_policy_and_caching(client):
    response = client.get("/patient-info?lang=en")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    assert csp.endswith("frame-ancestors 'none'")
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_https_deployments_send_hsts(settings):
    app = create_app(settings.with_overrides(public_base_url="https://cds.example.org"))
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_request_id_is_echoed_when_a_uuid_and_replaced_otherwise(client):
    mine = str(uuid.uuid4())
    assert client.get("/healthz", headers={"X-Request-ID": mine}).headers["X-Request-ID"] == mine
    replaced = client.get("/healthz", headers={"X-Request-ID": "Jansen, Piet"}).headers
    assert uuid.UUID(replaced["X-Request-ID"]) and "Jansen" not in replaced["X-Request-ID"]


def test_readyz_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_cannot_be_reached(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    app = create_app(settings.with_overrides(database_url=f"sqlite:///{blocker}/audit.db"))
    app.test_client_class = ContractClient
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert app.test_client().get("/healthz").status_code == 200  # alive, just not ready


def test_metrics_count_requests_and_decisions(client):
    before = client.get("/metrics").get_data(as_text=True)
    assert client.post(SELECT, json=sample_request()).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    after = response.get_data(as_text=True)
    labels = {"hook": "order-select", "outcome": "not-indicated", "modality": "mri"}
    decided = _metric(after, "cds_decisions_total", **labels)
    assert decided == _metric(before, "cds_decisions_total", **labels) + 1
    served = {"endpoint": "/cds-services/<service_id>", "method": "POST", "status": "200"}
    count = "cds_http_request_duration_seconds_count"
    assert _metric(after, count, **served) == _metric(before, count, **served) + 1
    # Every kind is exposed from the start, so a dashboard sees zeros rather than gaps.
    for kind in metrics.FHIR_ERROR_KINDS:
        assert f'cds_fhir_fetch_errors_total{{kind="{kind}"}}' in after


def test_metrics_count_fhir_fetch_errors(client, fhir_stub):
    request = sample_request()
    del request["prefetch"]["procedures"]
    request["fhirServer"] = fhir_stub.base_url
    request["fhirAuthorization"] = {
        "access_token": "stub-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "lumbar-cds",
    }
    fhir_stub.add("Procedure?patient=sample-patient-1", status=500)
    before = _metric(
        metrics.render()[0].decode(), "cds_fhir_fetch_errors_total", kind="server-error"
    )
    client.post(SELECT, json=request)
    after = _metric(
        metrics.render()[0].decode(), "cds_fhir_fetch_errors_total", kind="server-error"
    )
    assert after >= before + 1


def test_unmatched_paths_share_one_metrics_label(app):
    app.test_client_class = FlaskClient  # undocumented paths are outside the OpenAPI contract
    client = app.test_client()
    client.get(f"/{uuid.uuid4()}")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="unmatched"' in text
    assert not re.search(r'endpoint="/[0-9a-f]{8}-', text)


def test_each_request_writes_one_json_log_line(client, caplog):
    caplog.set_level(logging.INFO)
    instance = str(uuid.uuid4())
    request = sample_request() | {"hookInstance": instance}
    response = client.post(SELECT, json=request)
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    served = [line for line in lines if line["message"] == "request served"]
    assert len(served) == 1
    line = served[0]
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "status"}
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["status"] == 200 and line["latency_ms"] >= 0
    assert line["endpoint"] == "/cds-services/<service_id>"
    assert line["service"] == "lumbar-imaging-order-select"
    assert line["hook_instance"] == instance
    evaluated = next(line for line in lines if line["message"] == "hook evaluated")
    assert evaluated["decisions"] == ["not-indicated"]
    assert evaluated["request_id"] == line["request_id"]

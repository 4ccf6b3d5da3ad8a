"""No token, name or free text reaches the logs, whatever a request or a FHIR server sends.

Requests carry a distinctive patient name, note text, FHIR access token and a JWT-looking
Authorization header into every path that logs: a normal evaluation, a FHIR server that fails
and echoes them in its OperationOutcome, a request the schema refuses, an unhandled exception
whose message holds them, and an audit store that cannot be written. Every record at DEBUG and
above, from any logger, is formatted with the service's JSON formatter and searched.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.observability.logs import JsonFormatter, safe_text
from tests.support.fhir_stub import FhirStub
from tests.support.hook_requests import SELECT, sample_request

NAME = "Gerritdina Zwanenburg-Oosterhof"
NOTE = "vertelt over ruzie met buurman Kwakernaat na het tillen"
ACCESS_TOKEN = "fhir-tok-Qx7Vb9Lm2Np4Rs6Tu8Wy0"
JWT = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0"
    ".eyJpc3MiOiJodHRwczovL2Voci5leGFtcGxlIiwic3ViIjoiY2xpZW50In0"
    ".c2lnbmF0dXJlLXRoYXQtaXMtbm90LXJlYWw"
)
SECRETS = (NAME, "Zwanenburg", "Gerritdina", NOTE, "Kwakernaat", ACCESS_TOKEN, JWT, JWT[:40])
HEADERS = {"Authorization": f"Bearer {JWT}", "X-Request-ID": NAME}


def _personal_request() -> dict:
    request = sample_request()
    prefetch = request["prefetch"]
    prefetch["patient"]["name"] = [{"text": NAME, "family": "Zwanenburg-Oosterhof"}]
    condition = prefetch["conditions"]["entry"][0]["resource"]
    condition["note"] = [{"text": f"Patiënte {NOTE}. {NAME}."}]
    request["fhirServer"] = "http://127.0.0.1:9/fhir"  # all is prefetched: never called
    request["fhirAuthorization"] = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "lumbar-cds",
    }
    return request


def _assert_clean(caplog: pytest.LogCaptureFixture, stderr: str) -> list[dict]:
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    lines += [line for line in stderr.splitlines() if line.startswith("{")]
    assert lines, "nothing was logged: the test would prove nothing"
    for line in lines:
        for secret in SECRETS:
            assert secret not in line, f"{secret!r} leaked into the log: {line}"
    return [json.loads(line) for line in lines]


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_evaluation_with_personal_data_logs_none_of_it(client, capture, capsys):
    capture.set_level(logging.DEBUG)
    response = client.post(SELECT, json=_personal_request(), headers=HEADERS)
    assert response.status_code == 200
    lines = _assert_clean(capture, capsys.readouterr().err)
    assert any(line["message"] == "hook evaluated" for line in lines)


def test_failing_fhir_server_echoing_personal_data_logs_none_of_it(client, capture, capsys):
    echo = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "exception",
                "diagnostics": f"{NAME}: {NOTE} (token {ACCESS_TOKEN}, Bearer {JWT})",
            }
        ],
    }
    with FhirStub(token=ACCESS_TOKEN) as stub:
        for query in ("Procedure?patient=sample-patient-1", "Patient/sample-patient-1"):
            stub.add(query, echo, status=503)
        request = _personal_request()
        del request["prefetch"]["procedures"]
        del request["prefetch"]["patient"]
        request["fhirServer"] = stub.base_url
        response = client.post(SELECT, json=request, headers=HEADERS)
    assert response.status_code in (200, 412)
    lines = _assert_clean(capture, capsys.readouterr().err)
    assert any(line["logger"].startswith("cds_service.fhir") for line in lines)


def test_refused_request_logs_none_of_it(client, capture, capsys):
    request = _personal_request()
    request["context"]["patientId"] = {"name": NAME, "note": NOTE}
    response = client.post(SELECT, json=request, headers=HEADERS)
    assert response.status_code == 400
    _assert_clean(capture, capsys.readouterr().err)


def test_unhandled_exception_logs_its_type_and_place_only(app, capture, capsys, monkeypatch):
    def explode(*_: object, **__: object) -> None:
        raise ValueError(f"{NAME} {NOTE} {ACCESS_TOKEN} {JWT}")

    monkeypatch.setattr("cds_service.hooks.routes.evaluate", explode)
    app.test_client_class = FlaskClient  # a 500 is outside the OpenAPI contract on purpose
    response = app.test_client().post(SELECT, json=_personal_request(), headers=HEADERS)
    assert response.status_code == 500
    lines = _assert_clean(capture, capsys.readouterr().err)
    crash = next(line for line in lines if line["message"] == "unhandled error")
    assert crash["exc_type"] == "ValueError"
    assert any("routes.py" in frame and "call_service" in frame for frame in crash["stack"])


def test_audit_store_failure_logs_none_of_it(settings, tmp_path, capture, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    app = create_app(settings.with_overrides(database_url=f"sqlite:///{blocker}/audit.db"))
    response = app.test_client().post(SELECT, json=_personal_request(), headers=HEADERS)
    assert response.status_code == 200
    assert app.test_client().get("/readyz").status_code == 503
    lines = _assert_clean(capture, capsys.readouterr().err)
    assert any(line["level"] in ("WARNING", "ERROR") for line in lines)


def test_log_calls_with_free_text_arguments_are_withheld():
    record = logging.LogRecord(
        "any.library", logging.WARNING, __file__, 1, "%s failed for %s: %s", None, None
    )
    record.args = ("search Condition", f"/Condition?patient={uuid.uuid4()}", f"{NAME} {NOTE}")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "search Condition failed for [withheld]: [withheld]"
    record.args = ("Bearer", ACCESS_TOKEN, JWT)
    assert ACCESS_TOKEN not in JsonFormatter().format(record)
    plain = logging.LogRecord(
        "x", logging.INFO, __file__, 1, f"Authorization: Bearer {JWT}", (), None
    )
    assert JWT not in JsonFormatter().format(plain)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("conditions", True),
        ("search Condition", True),
        ("lumbar-imaging-order-select", True),
        (ACCESS_TOKEN, False),
        (JWT, False),
        (f"{NAME}: {NOTE}", False),
        ("a" * 70, False),
        ("Patient?name=Jansen&birthdate=1980", False),
    ],
)
def test_safe_text(value, kept):
    assert (safe_text(value) == value) is kept


def test_unlisted_extra_fields_are_dropped_and_listed_ones_checked():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "done", (), None)
    record.patient_name = NAME
    record.hook_instance = NAME
    record.decisions = ["urgent", NOTE]
    line = json.loads(JsonFormatter().format(record))
    assert "patient_name" not in line
    assert line["hook_instance"] == "[withheld]"
    assert line["decisions"] == ["urgent", "[withheld]"]


def test_the_listening_address_is_shown_but_no_url_with_a_path():
    """gunicorn's start-up line names where it listens; any other URL stays withheld."""
    formatter = JsonFormatter()

    def line(*args: object) -> str:
        record = logging.LogRecord(
            "gunicorn.error", logging.INFO, "", 0, "Listening at: %s (%s)", args, None
        )
        return json.loads(formatter.format(record))["message"]

    assert line("http://127.0.0.1:8080", 41) == "Listening at: http://127.0.0.1:8080 (41)"
    assert line("http://[::1]:8080,http://10.0.0.5:8080", 7).startswith(
        "Listening at: http://[::1]"
    )
    for url in (
        "http://fhir.example/Patient/123",
        "http://ehr:80/?name=Zwanenburg",
        f"http://{NAME}:1",
    ):
        assert line(url, 1) == "Listening at: [withheld] (1)"

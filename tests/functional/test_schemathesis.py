"""Property-based contract fuzzing: schemathesis generates requests from openapi.yaml (valid and
invalid bodies, parameters and headers) and sends them to the app over WSGI. No answer may be a
server error, and every answer must be documented: status code, content type and body schema.

Bounded and deterministic for CI: at most MAX_EXAMPLES generated cases per operation, a fixed
derandomized search, no example database. The spec is loaded from its path, so the external
JSON Schemas it references (cds_service/hooks/schemas/*.json, cds_service/audit/*.json) are
resolved relative to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.shipped import OPENAPI_DOCUMENT

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for all generated cases (hypothesis reruns a test body, not its fixtures)."""
    database = tmp_path_factory.mktemp("schemathesis") / "audit.db"
    options = {
        "env": "test",
        "public_base_url": "http://cds.test",
        "database_url": f"sqlite:///{database}",
        # A generated fhirServer is refused unless it is loopback; keep such calls short.
        "fhir_timeout_seconds": 0.2,
        # Authentication has its own tests (tests/functional/test_auth.py).
        "auth_enabled": False,
    }
    known = {field.name for field in fields(Settings)}
    app = create_app(Settings(**{k: v for k, v in options.items() if k in known}))
    yield app
    app.extensions["cds_audit"].store.engine.dispose()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_openapi(case, fuzzed_app):
    case.call_and_validate(app=fuzzed_app, checks=CHECKS)

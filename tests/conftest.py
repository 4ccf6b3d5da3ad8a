"""Shared fixtures: the app under test and a client that holds every response to openapi.yaml."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Settings
from tests.support.audit_db import postgres_schema
from tests.support.contract import check_response
from tests.support.fhir_stub import FhirStub


class ServedClient(FlaskClient):
    """A Flask test client that closes each response once read, as a WSGI server does.

    The service acts when a response is closed (a token's retry binding is cleared once its
    answer is sent), and Werkzeug's client closes only buffered responses.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


# Every app the tests build, unless a test picks its own client, is served as gunicorn would.
Flask.test_client_class = ServedClient


class ContractClient(ServedClient):
    """A Flask test client that checks each response against the OpenAPI contract."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        request = response.request
        check_response(
            urlsplit(request.url).path,
            request.method,
            response.status_code,
            response.content_type or "",
            response.get_data(),
        )
        return response


@pytest.fixture(scope="session", autouse=True)
def _no_audit_writes_to_var(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built from the environment (CLI, live server) audit into a temporary SQLite file."""
    path = tmp_path_factory.mktemp("audit") / "environment.db"
    previous = os.environ.get("CDS_DATABASE_URL")
    os.environ["CDS_DATABASE_URL"] = f"sqlite:///{path}"
    yield
    if previous is None:
        os.environ.pop("CDS_DATABASE_URL", None)
    else:
        os.environ["CDS_DATABASE_URL"] = previous


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings: development conveniences, English default kept Dutch as shipped."""
    return Settings(
        env="test",
        public_base_url="http://cds.test",
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        auth_enabled=False,  # tests/functional/test_auth.py tests authentication
        # These tests read the audit rows a call wrote: on a loaded 2-core machine a first call
        # (schema upgrade included) may take longer than the 0.3 s a call waits in production,
        # and its rows would be spooled. test_bounded_waits.py tests that bound.
        database_wait_seconds=5.0,
    )


AUDIT_BACKENDS = ["sqlite", "postgresql"] if os.environ.get("CDS_TEST_DATABASE_URL") else ["sqlite"]


@pytest.fixture(params=AUDIT_BACKENDS)
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty audit database: a SQLite file, and (when CDS_TEST_DATABASE_URL is set) a fresh
    PostgreSQL schema dropped afterwards. An unreachable PostgreSQL fails the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with postgres_schema(os.environ["CDS_TEST_DATABASE_URL"]) as url:
        yield url


@pytest.fixture
def audit_settings(settings: Settings, audit_url: str) -> Settings:
    """Test settings writing the audit to `audit_url`."""
    return settings.with_overrides(database_url=audit_url)


@pytest.fixture
def audit_app(audit_settings: Settings) -> Iterator[Flask]:
    """An app auditing into `audit_url`; its connections are closed afterwards."""
    app = create_app(audit_settings)
    app.test_client_class = ContractClient
    yield app
    app.extensions["cds_audit"].store.engine.dispose()


@pytest.fixture
def audit_client(audit_app: Flask) -> FlaskClient:
    """A contract-checking client of an app auditing into `audit_url`."""
    return audit_app.test_client()


@pytest.fixture
def app(settings: Settings) -> Flask:
    """A fresh app per test."""
    app = create_app(settings)
    app.test_client_class = ContractClient
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """The contract-checking test client."""
    return app.test_client()


@pytest.fixture
def fhir_stub() -> Iterator[FhirStub]:
    """A real loopback FHIR server."""
    with FhirStub(token="stub-token") as stub:
        yield stub

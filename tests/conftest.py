"""Shared fixtures: the app under test and a client that holds every response to openapi.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Settings
from tests.support.contract import check_response
from tests.support.fhir_stub import FhirStub


class ContractClient(FlaskClient):
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


@pytest.fixture
def settings() -> Settings:
    """Test settings: development conveniences, English default kept Dutch as shipped."""
    return Settings(env="test", public_base_url="http://cds.test")


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

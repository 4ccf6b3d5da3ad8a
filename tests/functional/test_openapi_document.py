"""openapi.yaml is a valid OpenAPI 3.1 document whose schemas resolve."""

from __future__ import annotations

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from cds_service.hooks.discovery import PREFETCH
from tests.support.contract import OPENAPI, response_schema


def test_openapi_yaml_is_valid_openapi_31():
    spec, base_uri = read_from_filename(str(OPENAPI))
    validate(spec, base_uri=base_uri)


def test_every_service_status_is_documented():
    for status in (200, 400, 404, 412, 413):
        assert response_schema("/cds-services/any-id", "post", status) is not None
    assert response_schema("/cds-services/any-id", "post", 500) is None


def test_discovery_example_lists_every_prefetch_key_the_service_asks_for():
    spec, _ = read_from_filename(str(OPENAPI))
    response = spec["paths"]["/cds-services"]["get"]["responses"]["200"]
    example = response["content"]["application/json"]["example"]
    assert example["services"][0]["prefetch"] == PREFETCH
    for key in ("episodesOfCare", "encounters"):
        assert f"`{key}`" in response["description"]

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


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(document: dict, ref: str):
    assert ref.startswith("#/"), f"{ref} points outside the served document"
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def check_served_document(text: str, base_url: str) -> dict:
    """The served OpenAPI: valid 3.1, every $ref inside it and resolving, servers = base."""
    import yaml

    document = yaml.safe_load(text)
    validate(document)  # no base URI: nothing outside the document is needed
    refs = _refs(document)
    assert len(refs) > 20
    for ref in refs:
        assert _resolve(document, ref) is not None
    assert document["servers"] == [{"url": base_url, "description": "this deployment"}]
    return document


def test_the_served_document_is_self_contained_and_names_this_deployment(settings):
    from cds_service.app import create_app

    app = create_app(settings.with_overrides(public_base_url="https://cds.example.org/lumbar"))
    response = app.test_client().get("/openapi.yaml")
    assert response.status_code == 200
    document = check_served_document(
        response.get_data(as_text=True), "https://cds.example.org/lumbar"
    )
    schemas = document["components"]["schemas"]
    assert {
        "Discovery",
        "HookRequest",
        "CdsResponse",
        "OperationOutcome",
        "Feedback",
    } <= set(schemas)
    # The schemas the service validates with, bundled as they are (one source of truth).
    from cds_service.hooks.validation import schemas as validation_schemas

    shipped = validation_schemas()["hook-request.schema.json"]
    assert "$id" not in schemas["HookRequest"]
    assert schemas["HookRequest"]["$defs"].keys() == shipped["$defs"].keys()
    base = schemas["HookRequest"]["$defs"]["baseRequest"]
    assert base["properties"].keys() == shipped["$defs"]["baseRequest"]["properties"].keys()

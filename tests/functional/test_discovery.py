"""Discovery: GET /cds-services lists both services with prefetch and usage requirements."""

from __future__ import annotations

from urllib.parse import urlsplit

import cds_service.fhir.facts  # noqa: F401  (registers the readers)
from cds_service.fhir.facts.registry import READERS
from cds_service.hooks.discovery import PREFETCH


def test_discovery_lists_both_lumbar_services(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.get_json()["services"]}
    assert services["lumbar-imaging-order-select"]["hook"] == "order-select"
    assert services["lumbar-imaging-order-sign"]["hook"] == "order-sign"
    for service in services.values():
        assert service["title"] and service["description"] and service["usageRequirements"]


def test_prefetch_templates_cover_every_resource_family_the_rules_read(client):
    service = client.get("/cds-services").get_json()["services"][0]
    resource_types = {urlsplit(q).path.split("/")[0] for q in service["prefetch"].values()}
    assert resource_types == {
        "Patient",
        "Condition",
        "Observation",
        "Procedure",
        "MedicationStatement",
        "MedicationRequest",
        "ServiceRequest",
        "ImagingStudy",
        "DiagnosticReport",
        "EpisodeOfCare",
        "Encounter",
    }
    # every resource type the facts package has a reader for is asked for, and no other
    assert resource_types == set(READERS)
    # CDS Hooks 2.0 allows only root-level context tokens in templates.
    for template in PREFETCH.values():
        assert "{{context.patientId}}" in template
        assert "draftOrders" not in template


def test_openapi_document_is_served(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert b"openapi: 3.1.0" in response.data

"""The CDS services this server offers and the prefetch templates their rules need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.errors import UnknownService

# One template per resource family the rules read (POLICY.md). All Conditions and episodes are
# fetched, not only active ones, because resolved episodes and cancer history are evidence too.
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "serviceRequests": "ServiceRequest?patient={{context.patientId}}",
    "imagingStudies": "ImagingStudy?patient={{context.patientId}}",
    "diagnosticReports": "DiagnosticReport?patient={{context.patientId}}",
    # Dutch GP systems send the episode as an EpisodeOfCare and each consult as an Encounter
    "episodesOfCare": "EpisodeOfCare?patient={{context.patientId}}",
    "encounters": "Encounter?patient={{context.patientId}}",
}

# Keys a client may leave out without a fhirServer: "no data" then, not a 412 (many EHRs hold no
# EpisodeOfCare; clients written against the nine core keys keep working).
SUPPLEMENTARY_KEYS = frozenset({"episodesOfCare", "encounters"})

USAGE_REQUIREMENTS = (
    "Send lumbar-spine imaging orders (X-ray, MRI, CT) as draft ServiceRequests in "
    "context.draftOrders. Provide the prefetch keys, or fhirServer with fhirAuthorization "
    "so the service can read the patient's record. Calls must carry a Bearer JWT from a "
    "trusted issuer when authentication is enabled."
)


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """One entry of the discovery response."""

    id: str
    hook: str
    title: str
    description: str

    def to_json(self) -> dict[str, Any]:
        """The discovery entry as CDS Hooks 2.0 JSON."""
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(PREFETCH),
            "usageRequirements": USAGE_REQUIREMENTS,
        }


SERVICES: dict[str, ServiceDefinition] = {
    service.id: service
    for service in (
        ServiceDefinition(
            id="lumbar-imaging-order-select",
            hook="order-select",
            title="Lumbar spine imaging: is the scan indicated?",
            description=(
                "Checks a selected lumbar-spine X-ray, MRI or CT order against the imaging "
                "indications (trauma, neurological deficit, red flags, surgical planning, "
                "failed active conservative care) and returns advice, alternatives and "
                "words for the patient, with an appropriateness rating."
            ),
        ),
        ServiceDefinition(
            id="lumbar-imaging-order-sign",
            hook="order-sign",
            title="Lumbar spine imaging: check before signing",
            description=(
                "Checks every lumbar-spine X-ray, MRI or CT order about to be signed against "
                "the imaging indications and records an appropriateness rating on each."
            ),
        ),
    )
}


def discovery_document() -> dict[str, Any]:
    """The body of GET /cds-services."""
    return {"services": [service.to_json() for service in SERVICES.values()]}


def find_service(service_id: str) -> ServiceDefinition:
    """The service with this id, or UnknownService (404)."""
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id '{service_id[:80]}'", expression="id")
    return service

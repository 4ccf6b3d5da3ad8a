"""An X-ray ordered where MRI is the modality comes with a one-click "replace with MRI"."""

from __future__ import annotations

import copy

from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.fhir.orders import recognise
from cds_service.rules.knowledge import default_knowledge
from cds_service.rules.model import Modality
from tests.support.hook_requests import (
    SELECT,
    decisions,
    sample_request,
    service_request,
    with_orders,
)


def _with_weakness(request: dict) -> dict:
    """The sample patient with a left-sided MRC 4 foot dorsiflexion yesterday."""
    request = copy.deepcopy(request)
    request["prefetch"]["observations"]["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "o-mrc-4",
                "status": "final",
                "code": {"text": "Spierkracht voetheffers links (MRC)"},
                "subject": {"reference": "Patient/sample-patient-1"},
                "effectiveDateTime": request["prefetch"]["observations"]["entry"][0]["resource"][
                    "effectiveDateTime"
                ],
                "valueInteger": 4,
            }
        }
    )
    return request


def test_xray_for_a_deficit_offers_an_mri_in_its_place(client):
    draft = service_request("draft-xray", cpt="72100")
    request = with_orders(_with_weakness(sample_request()), [draft])
    body = client.post(SELECT, json=request, headers={"Accept-Language": "en"}).get_json()
    entry = decisions(body)["ServiceRequest/draft-xray"]
    assert entry["decision"] == "indicated"
    assert "xray-prefer-mri" in entry["advice"]
    card = body["cards"][0]
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    delete, create = suggestion["actions"]
    assert delete == {
        "type": "delete",
        "description": delete["description"],
        "resourceId": "ServiceRequest/draft-xray",
    }
    resource = create["resource"]
    ServiceRequest.model_validate(resource)  # a valid FHIR R4 ServiceRequest
    assert resource["subject"] == draft["subject"]
    # The service itself recognises the new order as a lumbar MRI.
    order = recognise({**resource, "id": "new"}, default_knowledge())
    assert order is not None and order.modality is Modality.MRI


def test_mri_orders_and_fitting_modalities_get_no_replacement(client):
    request = _with_weakness(sample_request())  # the sample orders an MRI
    body = client.post(SELECT, json=request).get_json()
    assert decisions(body)["ServiceRequest/draft-mri-1"]["decision"] == "indicated"
    assert "suggestions" not in body["cards"][0]

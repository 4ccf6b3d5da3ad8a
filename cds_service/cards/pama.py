"""The Argonaut PAMA appropriateness rating, attached to the draft order as an update action."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cds_service.rules.model import Decision

RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"
RATING_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
QCDSM_URL = "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted"
CONSULT_URL = "http://fhir.org/argonaut/Extension/pama-rating-consult-id"
AUC_URL = "http://fhir.org/argonaut/Extension/pama-rating-auc-applied"
AUC_APPLIED = "https://lumbar-imaging-cds.local/policy/lumbar-imaging"
OUR_URLS = {RATING_URL, QCDSM_URL, CONSULT_URL, AUC_URL}
DESCRIPTION = {
    "nl": "Leg de beoordeling van de indicatie vast op de aanvraag ({rating})",
    "en": "Record the appropriateness rating on the order ({rating})",
}


def rating_action(
    draft: Mapping[str, Any],
    decision: Decision,
    *,
    consult_id: str,
    qcdsm_id: str,
    language: str,
) -> dict[str, Any] | None:
    """An `update` action carrying the rating, or None when no rating applies (insufficient data).

    The resource is the draft order in its entirety plus the rating extensions; earlier rating
    extensions are replaced so a re-evaluation never stacks two ratings.
    """
    rating = decision.rating
    if rating is None:
        return None
    resource = copy.deepcopy(dict(draft))
    kept = [
        ext
        for ext in resource.get("extension") or []
        if not (isinstance(ext, Mapping) and ext.get("url") in OUR_URLS)
    ]
    resource["extension"] = [
        *kept,
        {
            "url": RATING_URL,
            "valueCodeableConcept": {"coding": [{"system": RATING_SYSTEM, "code": rating}]},
        },
        {"url": QCDSM_URL, "valueString": qcdsm_id},
        {"url": CONSULT_URL, "valueUri": f"urn:uuid:{consult_id}"},
        {"url": AUC_URL, "valueUri": f"{AUC_APPLIED}/{decision.policy_version or 'current'}"},
    ]
    return {
        "type": "update",
        "description": DESCRIPTION[language].format(rating=rating),
        "resource": resource,
    }

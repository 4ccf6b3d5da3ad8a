"""The FHIR actions a card offers: cancel the order, a physiotherapy referral, an MRI instead.

Each suggestion deletes the draft order and, where it replaces it, creates a new draft
ServiceRequest for the same patient, encounter, requester and reasons. Texts come from the
catalogue; only the FHIR shapes are built here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cds_service.cards.catalogue import CardTemplate, Catalogue
from cds_service.rules.model import Decision, Modality, Outcome

SNOMED = "http://snomed.info/sct"
# The referral the "replace" suggestion creates: SNOMED CT 91251008 |Physical therapy procedure|.
THERAPY_CODE = {"system": SNOMED, "code": "91251008", "display": "Physical therapy procedure"}
# A lumbar MRI order, coded as mappings/valuesets/lumbar-mri.csv recognises it (codes only:
# CPT descriptors are not ours to ship).
MRI_CODES = (
    {"system": "http://www.ama-assn.org/go/cpt", "code": "72148"},
    {"system": SNOMED, "code": "41333006"},
)

Localise = Callable[[str], str]


def suggestion(label: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    """A CDS Hooks suggestion with its own uuid."""
    return {"label": label, "uuid": str(uuid.uuid4()), "actions": actions}


def clean_codeable(concepts: Any) -> list[dict[str, Any]]:
    """CodeableConcepts from a draft order with empty codings (Sandbox quirk) dropped."""
    cleaned = []
    for concept in concepts or []:
        if not isinstance(concept, Mapping):
            continue
        codings = [
            {k: v for k, v in c.items() if v not in (None, "")}
            for c in concept.get("coding") or []
            if isinstance(c, Mapping) and c.get("code")
        ]
        item: dict[str, Any] = {}
        if codings:
            item["coding"] = codings
        if isinstance(concept.get("text"), str) and concept["text"].strip():
            item["text"] = concept["text"]
        if item:
            cleaned.append(item)
    return cleaned


def order_in_place_of(
    draft: Mapping[str, Any] | None, patient_id: str | None, code: dict[str, Any]
) -> dict[str, Any] | None:
    """A new draft ServiceRequest with `code` for the draft's patient, encounter, requester and
    reasons; None when the patient cannot be named."""
    draft = draft or {}
    subject = draft.get("subject")
    if not (isinstance(subject, Mapping) and subject.get("reference")):
        subject = {"reference": f"Patient/{patient_id}"} if patient_id else None
    if subject is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": code,
        "subject": dict(subject),
    }
    for key in ("encounter", "requester"):
        value = draft.get(key)
        if isinstance(value, Mapping) and value.get("reference"):
            resource[key] = dict(value)
    reasons = clean_codeable(draft.get("reasonCode"))
    if reasons:
        resource["reasonCode"] = reasons
    return resource


def therapy_referral(
    draft: Mapping[str, Any] | None, patient_id: str | None, code_text: str, note: str
) -> dict[str, Any] | None:
    """A new draft ServiceRequest for exercise therapy / physiotherapy, for the same patient."""
    code = {"coding": [dict(THERAPY_CODE)], "text": code_text}
    resource = order_in_place_of(draft, patient_id, code)
    if resource is not None:
        resource["note"] = [{"text": note}]
    return resource


def mri_order(
    draft: Mapping[str, Any] | None, patient_id: str | None, code_text: str, urgent: bool
) -> dict[str, Any] | None:
    """A new draft lumbar MRI order taking the draft's subject, context and reasons."""
    draft = draft or {}
    code = {"coding": [dict(c) for c in MRI_CODES], "text": code_text}
    resource = order_in_place_of(draft, patient_id, code)
    if resource is None:
        return None
    if draft.get("intent") == "plan":
        resource["intent"] = "plan"
    if urgent:
        resource["priority"] = "urgent"
    elif draft.get("priority") in ("routine", "urgent", "asap", "stat"):
        resource["priority"] = draft["priority"]
    return resource


def not_indicated_suggestions(
    decision: Decision,
    template: CardTemplate,
    language: str,
    variables: Mapping[str, Any],
    draft: Mapping[str, Any] | None,
    patient_id: str | None,
    localise: Localise,
) -> list[dict[str, Any]]:
    """Cancel the order; or replace it with a referral for exercise therapy / physiotherapy."""

    def text(name: str) -> str:
        return localise(template.texts[name][language].render(variables).strip())

    delete_id = decision.order.reference
    cancel = suggestion(
        text("suggestions.cancel.label"),
        [
            {
                "type": "delete",
                "description": text("suggestions.cancel.delete"),
                "resourceId": delete_id,
            }
        ],
    )
    suggestions = [cancel]
    referral = therapy_referral(
        draft,
        patient_id,
        text("suggestions.replace.code_text"),
        text("suggestions.replace.note"),
    )
    if referral is not None:
        suggestions.append(
            suggestion(
                text("suggestions.replace.label"),
                [
                    {
                        "type": "delete",
                        "description": text("suggestions.replace.delete"),
                        "resourceId": delete_id,
                    },
                    {
                        "type": "create",
                        "description": text("suggestions.replace.create"),
                        "resource": referral,
                    },
                ],
            )
        )
    return suggestions


def mri_suggestions(
    decision: Decision,
    catalogue: Catalogue,
    language: str,
    order: str,
    draft: Mapping[str, Any] | None,
    patient_id: str | None,
    localise: Localise,
) -> list[dict[str, Any]]:
    """Replace an X-ray or CT with MRI when the engine's advice suggests MRI for this case."""
    if decision.order.modality is Modality.MRI or not any(
        a.suggested is Modality.MRI for a in decision.advice
    ):
        return []

    def text(name: str) -> str:
        template = catalogue.mri_suggestion[name][language]
        return localise(template.render(order=order).strip())

    resource = mri_order(draft, patient_id, text("code_text"), decision.outcome is Outcome.URGENT)
    if resource is None:
        return []
    actions: list[dict[str, Any]] = [
        {"type": "delete", "description": text("delete"), "resourceId": decision.order.reference},
        {"type": "create", "description": text("create"), "resource": resource},
    ]
    return [suggestion(text("label"), actions)]


def override_reasons(catalogue: Catalogue, language: str) -> list[dict[str, str]]:
    """The coded override reasons with display text in the card language."""
    return [
        {"system": r["system"], "code": r["code"], "display": r["display"][language]}
        for r in catalogue.override_reasons
    ]

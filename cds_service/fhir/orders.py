"""Finds the lumbar-spine imaging orders among a hook's draft orders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds_service.errors import InvalidRequest, Issue
from cds_service.rules.knowledge import Knowledge
from cds_service.rules.model import EPISODE_CONCEPTS, LumbarOrder, OrderReason, Strength


def draft_resources(draft_orders: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The resources of a draftOrders Bundle, skipping entries without a resource."""
    entries = draft_orders.get("entry") or []
    return [
        entry["resource"]
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping)
    ]


def orders_to_evaluate(context: Mapping[str, Any], hook: str) -> list[dict[str, Any]]:
    """The draft orders this hook call asks about: the selections on order-select, else all.

    A selection that names no draft order is a client error (400), reported by its JSON path.
    """
    resources = draft_resources(context.get("draftOrders") or {})
    if hook != "order-select":
        return resources
    by_reference = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources if r.get("id")}
    chosen: list[dict[str, Any]] = []
    issues = []
    for index, selection in enumerate(context.get("selections") or []):
        resource = by_reference.get(selection)
        if resource is None:
            path = f"context.selections[{index}]"
            issues.append(Issue("invalid", f"{path}: names no entry of draftOrders", path))
        elif resource not in chosen:
            chosen.append(resource)
    if issues:
        raise InvalidRequest(issues[0].diagnostics, issues=issues)
    return chosen


def _codings(code: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(code, Mapping):
        return ()
    return [c for c in code.get("coding") or [] if isinstance(c, Mapping)]


def recognise(resource: Mapping[str, Any], knowledge: Knowledge) -> LumbarOrder | None:
    """A LumbarOrder when the draft ServiceRequest is lumbar X-ray, MRI or CT, else None."""
    order = _recognise_modality(resource, knowledge)
    if order is None:
        return None
    return LumbarOrder(
        order.reference,
        order.modality,
        order.code_display,
        order.strength,
        order_reason(resource, knowledge),
    )


# Concepts that, named as the reason for a scan, are the clinician's suspicion (POLICY
# "Suspected"): a stated alarm or indication, to be supported by the record.
SUSPICION_CONCEPTS = frozenset({"cauda-equina", "spinal-infection", "malignancy", "lumbar-injury"})
_REASON_TEXT_LIMIT = 20  # reason codes and notes read per order: a bounded amount of text


def order_reason(resource: Mapping[str, Any], knowledge: Knowledge) -> OrderReason | None:
    """What the order says of its reason: reasonCode, reasonReference displays, note, code.text.

    An episode concept, coded or affirmed, names the episode; an alarm or indication named
    (coded, affirmed or suspected) is the clinician's suspicion; a specialist's request in the
    text is surgical planning. Negated, family and conditional mentions count for nothing.
    """
    episode: set[str] = set()
    suspected: set[str] = set()
    specialist = False
    texts: list[str] = []
    reasons = resource.get("reasonCode")
    for reason in (reasons if isinstance(reasons, list) else [])[:_REASON_TEXT_LIMIT]:
        for coding in _codings(reason):
            system, value = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(value, str):
                for concept in knowledge.concepts_for_coding(system, value):
                    if concept in EPISODE_CONCEPTS:
                        episode.add(concept)
                    elif concept in SUSPICION_CONCEPTS:
                        suspected.add(concept)
            if isinstance(coding.get("display"), str):
                texts.append(coding["display"])
        if isinstance(reason, Mapping) and isinstance(reason.get("text"), str):
            texts.append(reason["text"])
    references = resource.get("reasonReference")
    for reference in (references if isinstance(references, list) else [])[:_REASON_TEXT_LIMIT]:
        if isinstance(reference, Mapping) and isinstance(reference.get("display"), str):
            texts.append(reference["display"])
    notes = resource.get("note")
    for note in (notes if isinstance(notes, list) else [])[:_REASON_TEXT_LIMIT]:
        if isinstance(note, Mapping) and isinstance(note.get("text"), str):
            texts.append(note["text"])
    code = resource.get("code")
    if isinstance(code, Mapping) and isinstance(code.get("text"), str):
        texts.append(code["text"])  # "MRI LWK i.v.m. verdenking HNP"
    for text in texts:
        for finding in knowledge.read_text(text).findings:
            if finding.concept == "specialist-request" and finding.affirmed:
                specialist = True
            elif finding.concept in EPISODE_CONCEPTS and finding.affirmed:
                episode.add(finding.concept)
            elif finding.concept in SUSPICION_CONCEPTS and finding.context in (
                "affirmed",
                "suspected",
            ):
                suspected.add(finding.concept)
    if not (episode or suspected or specialist):
        return None
    return OrderReason(frozenset(episode), frozenset(suspected), specialist)


def _recognise_modality(resource: Mapping[str, Any], knowledge: Knowledge) -> LumbarOrder | None:
    """The order's modality and display from its code (codes first, then text)."""
    if resource.get("resourceType") != "ServiceRequest":
        return None
    code = resource.get("code")
    reference = f"ServiceRequest/{resource.get('id') or 'unidentified'}"
    texts: list[str] = []
    for coding in _codings(code):
        system, value = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(value, str):
            for concept in knowledge.concepts_for_coding(system, value):
                modality = knowledge.modality_of(concept)
                if modality is not None:
                    display = coding.get("display") or (code or {}).get("text") or value
                    return LumbarOrder(reference, modality, str(display), Strength.CODE)
        if isinstance(coding.get("display"), str):
            texts.append(coding["display"])
    if isinstance(code, Mapping) and isinstance(code.get("text"), str):
        texts.insert(0, code["text"])
    for text in texts:
        modality = knowledge.order_modality(text)
        if modality is not None:
            return LumbarOrder(reference, modality, text, Strength.TEXT)
    return None


def lumbar_orders(
    resources: Sequence[Mapping[str, Any]], knowledge: Knowledge
) -> list[tuple[Mapping[str, Any], LumbarOrder]]:
    """The in-scope lumbar imaging orders with the draft resource each came from."""
    found = []
    for resource in resources:
        order = recognise(resource, knowledge)
        if order is not None:
            found.append((resource, order))
    return found

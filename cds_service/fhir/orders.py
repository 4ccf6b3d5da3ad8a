"""Finds the lumbar-spine imaging orders among a hook's draft orders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds_service.errors import InvalidRequest, Issue
from cds_service.rules.knowledge import Knowledge
from cds_service.rules.model import LumbarOrder, Modality, Strength

ORDER_CONCEPTS = {
    "lumbar-xray": Modality.XRAY,
    "lumbar-mri": Modality.MRI,
    "lumbar-ct": Modality.CT,
}


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
    if resource.get("resourceType") != "ServiceRequest":
        return None
    code = resource.get("code")
    reference = f"ServiceRequest/{resource.get('id') or 'unidentified'}"
    texts: list[str] = []
    for coding in _codings(code):
        system, value = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(value, str):
            for concept in knowledge.concepts_for_coding(system, value):
                if concept in ORDER_CONCEPTS:
                    display = coding.get("display") or (code or {}).get("text") or value
                    return LumbarOrder(
                        reference, ORDER_CONCEPTS[concept], str(display), Strength.CODE
                    )
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

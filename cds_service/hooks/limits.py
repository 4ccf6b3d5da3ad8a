"""Limits of one hook call, checked on the parsed body before any schema or evaluation work."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cds_service.config import Settings
from cds_service.errors import InvalidRequest


class TooManyOrders(InvalidRequest):
    """More draft orders (or selections) than CDS_MAX_DRAFT_ORDERS: each would cost a card."""

    issue_code = "too-costly"


def check_order_count(body: Mapping[str, Any], settings: Settings) -> None:
    """Refuse a call with more draft orders or selections than the service judges at once."""
    context = body.get("context")
    if not isinstance(context, Mapping):
        return  # the schema check says what is wrong
    limit = settings.max_draft_orders
    draft_orders = context.get("draftOrders")
    entries = draft_orders.get("entry") if isinstance(draft_orders, Mapping) else None
    # Counted on the raw list, before the schema walks every entry: 6,000 orders cost nothing.
    if isinstance(entries, list) and len(entries) > limit:
        raise TooManyOrders(
            f"context.draftOrders.entry: {len(entries)} draft orders, more than "
            f"CDS_MAX_DRAFT_ORDERS ({limit}) per call",
            expression="context.draftOrders.entry",
        )
    selections = context.get("selections")
    if isinstance(selections, list) and len(selections) > limit:
        raise TooManyOrders(
            f"context.selections: {len(selections)} selections, more than "
            f"CDS_MAX_DRAFT_ORDERS ({limit}) per call",
            expression="context.selections",
        )


class OrderTextTooLong(InvalidRequest):
    """An order text longer than CDS_MAX_ORDER_TEXT_CHARS (README "Limits" says why a 400)."""

    issue_code = "too-long"


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """The objects of a JSON array with their indexes (nothing when it is no array)."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, Mapping)]


def order_texts(resource: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The text fields the service reads from a draft order, by path within the resource."""
    found: list[tuple[str, Any]] = []
    code = resource.get("code")
    if isinstance(code, Mapping):
        found.append(("code.text", code.get("text")))
        for j, coding in _items(code.get("coding")):
            found.append((f"code.coding[{j}].display", coding.get("display")))
    for k, reason in _items(resource.get("reasonCode")):
        found.append((f"reasonCode[{k}].text", reason.get("text")))
        for j, coding in _items(reason.get("coding")):
            found.append((f"reasonCode[{k}].coding[{j}].display", coding.get("display")))
    for k, reference in _items(resource.get("reasonReference")):
        found.append((f"reasonReference[{k}].display", reference.get("display")))
    for k, note in _items(resource.get("note")):
        found.append((f"note[{k}].text", note.get("text")))
    return found


def check_order_texts(body: Mapping[str, Any], settings: Settings) -> None:
    """Refuse a call whose draft orders hold a text longer than the service reads and echoes."""
    context = body.get("context")
    draft_orders = context.get("draftOrders") if isinstance(context, Mapping) else None
    entries = draft_orders.get("entry") if isinstance(draft_orders, Mapping) else None
    limit = settings.max_order_text_chars
    for index, entry in _items(entries):
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        for path, text in order_texts(resource):
            if isinstance(text, str) and len(text) > limit:
                where = f"context.draftOrders.entry[{index}].resource.{path}"
                raise OrderTextTooLong(
                    f"{where}: {len(text)} characters, more than CDS_MAX_ORDER_TEXT_CHARS "
                    f"({limit}) per order text",
                    expression=where,
                )


class DraftOrdersTooLarge(InvalidRequest):
    """context.draftOrders serialized is over CDS_MAX_DRAFT_ORDERS_BYTES."""

    status = 413
    issue_code = "too-costly"


class ResponseTooLarge(InvalidRequest):
    """The answer would be over CDS_MAX_RESPONSE_BYTES (no admitted request should get here)."""

    status = 413
    issue_code = "too-costly"


def compact_json(value: Any) -> bytes:
    """The value as the service sends JSON: compact, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def check_draft_orders_size(body: Mapping[str, Any], settings: Settings) -> None:
    """Refuse draft orders too large to echo: the rating update carries each one whole."""
    context = body.get("context")
    draft_orders = context.get("draftOrders") if isinstance(context, Mapping) else None
    if draft_orders is None:
        return
    size = len(compact_json(draft_orders))
    limit = settings.max_draft_orders_bytes
    if size > limit:
        raise DraftOrdersTooLarge(
            f"context.draftOrders: {size} bytes, more than CDS_MAX_DRAFT_ORDERS_BYTES ({limit})",
            expression="context.draftOrders",
        )


def bounded_response(response: Mapping[str, Any], settings: Settings) -> bytes:
    """The answer as JSON bytes, or ResponseTooLarge when it is over CDS_MAX_RESPONSE_BYTES."""
    payload = compact_json(response)
    limit = settings.max_response_bytes
    if len(payload) > limit:
        raise ResponseTooLarge(
            f"the answer to these draft orders would be {len(payload)} bytes, more than "
            f"CDS_MAX_RESPONSE_BYTES ({limit})",
            expression="context.draftOrders",
        )
    return payload

"""Limits of one hook call, checked on the parsed body before any schema or evaluation work."""

from __future__ import annotations

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

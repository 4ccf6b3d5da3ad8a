"""Assembles CDS Hooks responses that never carry null or empty values."""

from __future__ import annotations

from typing import Any

DECISIONS_EXTENSION = "org.lumbar-imaging-cds.decisions"


def prune(value: Any) -> Any:
    """A copy without None, "", [] or {} anywhere (CDS Hooks 2.0 forbids them)."""
    if isinstance(value, dict):
        cleaned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        cleaned_items = [prune(v) for v in value]
        return [v for v in cleaned_items if v not in (None, "", [], {})]
    return value


def hook_response(
    cards: list[dict[str, Any]],
    system_actions: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    *,
    mirror_in_extension: bool = True,
) -> dict[str, Any]:
    """The response body: cards (possibly empty), systemActions, and the extension mirror.

    The CDS Hooks Sandbox and Argonaut PAMA clients read ratings only from
    extension.systemActions, so the actions are returned in both places.
    """
    body: dict[str, Any] = {"cards": [prune(card) for card in cards]}
    actions = [prune(action) for action in system_actions]
    extension: dict[str, Any] = {}
    if actions:
        body["systemActions"] = actions
        if mirror_in_extension:
            extension["systemActions"] = actions
    if decisions:
        extension[DECISIONS_EXTENSION] = prune(decisions)
    if extension:
        body["extension"] = extension
    return body

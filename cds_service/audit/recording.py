"""Builds the audit rows of one evaluated hook call: codes, decisions and pseudonyms only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cds_service.audit.models import LIVE
from cds_service.audit.pseudonyms import Pseudonymiser, safe_token, uuid_or_pseudonym
from cds_service.evaluation import Evaluation
from cds_service.fhir.orders import draft_resources
from cds_service.rules.knowledge import Knowledge
from cds_service.rules.model import Status

CANCEL, REPLACE, OTHER = "cancel", "replace", "other"
SUGGESTION_KINDS = (CANCEL, REPLACE, OTHER)


@dataclass(frozen=True, slots=True)
class EvaluationRow:
    """One audit row (audit_evaluation) and the suggestions offered on its card."""

    values: dict[str, Any]
    suggestions: tuple[tuple[str, str], ...]  # (suggestion uuid, kind)


def suggestion_kind(suggestion: Mapping[str, Any]) -> str:
    """cancel, replace or other for one card suggestion.

    An explicit kind recorded by the card renderer wins (`extension` key
    "org.lumbar-imaging-cds.suggestion-kind"); otherwise the actions tell: only deletes is a
    cancellation of the draft order, a delete plus a create is a replacement.
    """
    extension = suggestion.get("extension")
    if isinstance(extension, Mapping):
        kind = extension.get("org.lumbar-imaging-cds.suggestion-kind")
        if kind in SUGGESTION_KINDS:
            return str(kind)
    types = {a.get("type") for a in suggestion.get("actions") or () if isinstance(a, Mapping)}
    if types == {"delete"}:
        return CANCEL
    if types == {"delete", "create"}:
        return REPLACE
    return OTHER


def _card_suggestions(card: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    found = []
    for item in (card or {}).get("suggestions") or ():
        if isinstance(item, Mapping):
            uuid = safe_token(item.get("uuid"), 36)
            if uuid:
                found.append((uuid, suggestion_kind(item)))
    return tuple(found)


def _order_coding(
    resource: Mapping[str, Any] | None, knowledge: Knowledge
) -> tuple[str | None, str | None]:
    """The (system, code) by which the order was recognised; codes outside value sets are
    never stored, because the client could have put anything there."""
    code = (resource or {}).get("code")
    for coding in (code or {}).get("coding") or () if isinstance(code, Mapping) else ():
        if not isinstance(coding, Mapping):
            continue
        system, value = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(value, str):
            concepts = knowledge.concepts_for_coding(system, value)
            if any(knowledge.modality_of(concept) is not None for concept in concepts):
                return system[:128], safe_token(value, 32)
    return None, None


def _joined(codes: list[str], limit: int) -> str:
    """The codes comma-separated, as many whole codes as fit in `limit` characters."""
    kept: list[str] = []
    for code in codes:
        if len(",".join([*kept, code])) > limit:
            break
        kept.append(code)
    return ",".join(kept)


def evaluation_rows(
    request: Mapping[str, Any],
    result: Evaluation,
    *,
    service_id: str,
    tenant: str,
    pseudonym: Pseudonymiser,
    knowledge: Knowledge,
    latency_ms: int,
    mode: str = LIVE,
    now: datetime | None = None,
) -> list[EvaluationRow]:
    """The audit rows for one hook call, one per evaluated lumbar order.

    `mode` is the service's CDS_MODE: shadow rows were judged but their cards not shown.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    context = request.get("context") or {}
    drafts = {
        f"ServiceRequest/{d.get('id') or 'unidentified'}": d
        for d in draft_resources(context.get("draftOrders") or {})
        if d.get("resourceType") == "ServiceRequest"
    }
    hook_instance = request.get("hookInstance")
    shared = {
        "recorded_at": now,
        "ts": int(now.timestamp() * 1000),
        "month": now.strftime("%Y-%m"),
        "service_id": service_id,
        "hook": result.hook,
        "hook_instance": uuid_or_pseudonym(pseudonym, "hook-instance", hook_instance),
        "tenant": tenant,
        "patient": pseudonym("patient", str(context.get("patientId"))),
        "clinician": pseudonym("clinician", str(context.get("userId"))),
        "encounter": pseudonym.optional("encounter", context.get("encounterId")),
        "latency_ms": max(0, int(latency_ms)),
        "mode": mode,
    }
    rows = []
    for item in result.orders:
        decision = item.decision
        order = decision.order
        system, code = _order_coding(drafts.get(order.reference), knowledge)
        met_criteria = [c for c in decision.criteria if c.status is Status.MET]
        met = sorted({c.id for c in met_criteria})
        # Engine codes from the mappings, checked anyway: nothing but a code reaches the store.
        reasons = sorted(
            {f"{c.id}:{c.reason}" for c in met_criteria if safe_token(c.reason, 64) is not None}
        )
        card_uuid = safe_token((item.card or {}).get("uuid"), 36)
        values = {
            **shared,
            "order_ref": pseudonym("order", order.reference),
            "order_system": system,
            "order_code": code,
            "modality": order.modality.value,
            "decision": decision.outcome.value,
            "criteria_met": ",".join(met)[:512],
            "reasons_met": _joined(reasons, 512),
            "policy_version": (safe_token(decision.policy_version, 32) or "unknown"),
            "card_uuid": card_uuid,
            "consult_id": item.consult_id,
        }
        rows.append(EvaluationRow(values, _card_suggestions(item.card)))
    return rows

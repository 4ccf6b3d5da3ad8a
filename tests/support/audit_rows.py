"""One evaluation row as the audit stores it, for tests that write the store or spool directly."""

from __future__ import annotations

from datetime import UTC, datetime

from cds_service.audit.recording import EvaluationRow

RECORDED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def evaluation_row(
    consult_id: str,
    hook_instance: str,
    *,
    when: datetime = RECORDED,
    ts_offset: int = 0,
    suggestions: tuple[tuple[str, str], ...] | None = None,
) -> EvaluationRow:
    """A not-indicated MRI row of consult `consult_id` in hook call `hook_instance`."""
    return EvaluationRow(
        {
            "recorded_at": when,
            "ts": int(when.timestamp() * 1000) + ts_offset,
            "month": when.strftime("%Y-%m"),
            "service_id": "lumbar-imaging-order-select",
            "hook": "order-select",
            "hook_instance": hook_instance,
            "tenant": "default",
            "patient": "p" * 64,
            "clinician": "c" * 64,
            "encounter": None,
            "order_ref": "o" * 64,
            "order_system": None,
            "order_code": None,
            "modality": "mri",
            "decision": "not-indicated",
            "criteria_met": "",
            "policy_version": "2026.11.1",
            "card_uuid": consult_id,
            "consult_id": consult_id,
            "latency_ms": 3,
        },
        ((f"s-{consult_id}", "cancel"),) if suggestions is None else suggestions,
    )

"""A known audit data set (500 evaluations) whose report figures are worked out by hand.

Period 2026-01-01..2026-03-31. Groups (see test_report.py for the expected figures):
A  200 not-indicated order-select evaluations, distinct patients, i = 0..199: Jan 10 for
   i < 100 else Feb 10; modality by block b = i // 10: b % 4 in (0, 1) MRI, 2 X-ray, 3 CT;
   response by i % 10: 0-2 cancelled, 3-4 replaced, 5 overridden (prefers-alternative),
   6 overridden (red-flag-not-recorded), 7 accepted other, 8-9 none. Clinician c-A (i < 100)
   or c-B; tenant north. Re-orders of the cancelled i % 10 == 0: i < 150 an indicated signed
   order 10 days later (15), i >= 150 one 50 days later (5, after the period).
B  50 not-indicated order-sign MRI evaluations, Mar 5, by j % 5: 0-1 overridden
   (prefers-alternative), 2 cancelled, 3-4 none. Clinician c-C; tenant north.
C  20 urgent MRI evaluations, Mar 15, clinician c-D, tenant south: 10 order-sign (3 accepted
   other, 7 none); 5 order-select followed 2 hours later by an indicated signed order; 5
   order-select without follow-up.
D  Jan 20: 100 indicated order-select (50 MRI, 50 X-ray); Feb 20: 30 insufficient-data
   order-select (10 CT, 20 MRI). Clinician c-A, tenant south.
E  75 not-indicated order-sign X-ray evaluations on 2025-12-15 (before the period), c-E.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from cds_service.audit.models import evaluation

NA = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
LOCAL = "https://lumbar-imaging-cds.local/CodeSystem/override-reason"


def _row(
    when: datetime,
    *,
    patient: str,
    clinician: str,
    tenant: str,
    hook: str,
    modality: str,
    decision: str,
    response: str | None = None,
    reason: tuple[str, str] | None = None,
) -> dict[str, Any]:
    service = f"lumbar-imaging-{hook}"
    return {
        "recorded_at": when,
        "ts": int(when.timestamp() * 1000),
        "month": when.strftime("%Y-%m"),
        "service_id": service,
        "hook": hook,
        "hook_instance": str(uuid.uuid4()),
        "tenant": tenant,
        "patient": patient,
        "clinician": clinician,
        "encounter": None,
        "order_ref": uuid.uuid4().hex,
        "order_system": "http://www.ama-assn.org/go/cpt",
        "order_code": {"mri": "72148", "xray": "72100", "ct": "72131"}[modality],
        "modality": modality,
        "decision": decision,
        "criteria_met": "",
        "policy_version": "test",
        "card_uuid": str(uuid.uuid4()),
        "consult_id": str(uuid.uuid4()),
        "latency_ms": 5,
        "response": response,
        "override_system": reason[0] if reason else None,
        "override_code": reason[1] if reason else None,
        "responded_at": when + timedelta(minutes=1) if response else None,
    }


def _at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 9, 0, tzinfo=UTC)


def known_rows() -> list[dict[str, Any]]:
    """The 500 rows described in the module docstring."""
    rows = []
    pattern = ["cancelled"] * 3 + ["replaced"] * 2 + ["overridden"] * 2 + ["accepted"] + [None] * 2
    for i in range(200):
        when = _at(1, 10) if i < 100 else _at(2, 10)
        modality = {0: "mri", 1: "mri", 2: "xray", 3: "ct"}[(i // 10) % 4]
        response = pattern[i % 10]
        reason = {5: (NA, "prefers-alternative"), 6: (LOCAL, "red-flag-not-recorded")}.get(i % 10)
        who = {
            "patient": f"pA{i}",
            "clinician": "c-A" if i < 100 else "c-B",
            "tenant": "north",
            "modality": modality,
        }
        rows.append(
            _row(
                when,
                hook="order-select",
                decision="not-indicated",
                response=response,
                reason=reason,
                **who,
            )
        )
        if i % 10 == 0:
            later = when + timedelta(days=10 if i < 150 else 50)
            rows.append(_row(later, hook="order-sign", decision="indicated", **who))
    for j in range(50):
        response = ["overridden", "overridden", "cancelled", None, None][j % 5]
        reason = (NA, "prefers-alternative") if response == "overridden" else None
        rows.append(
            _row(
                _at(3, 5),
                patient=f"pB{j}",
                clinician="c-C",
                tenant="north",
                hook="order-sign",
                modality="mri",
                decision="not-indicated",
                response=response,
                reason=reason,
            )
        )
    urgent = {"clinician": "c-D", "tenant": "south", "modality": "mri"}
    for k in range(10):
        rows.append(
            _row(
                _at(3, 15),
                patient=f"pC{k}",
                hook="order-sign",
                decision="urgent",
                response="accepted" if k < 3 else None,
                **urgent,
            )
        )
    for k in range(10, 20):
        rows.append(
            _row(_at(3, 15), patient=f"pC{k}", hook="order-select", decision="urgent", **urgent)
        )
        if k < 15:
            rows.append(
                _row(
                    _at(3, 15) + timedelta(hours=2),
                    patient=f"pC{k}",
                    hook="order-sign",
                    decision="indicated",
                    **urgent,
                )
            )
    for k in range(100):
        rows.append(
            _row(
                _at(1, 20),
                patient=f"pD{k}",
                clinician="c-A",
                tenant="south",
                hook="order-select",
                modality="mri" if k < 50 else "xray",
                decision="indicated",
            )
        )
    for k in range(30):
        rows.append(
            _row(
                _at(2, 20),
                patient=f"pD{100 + k}",
                clinician="c-A",
                tenant="south",
                hook="order-select",
                modality="ct" if k < 10 else "mri",
                decision="insufficient-data",
            )
        )
    for k in range(75):
        rows.append(
            _row(
                _at(12, 15, 2025),
                patient=f"pE{k}",
                clinician="c-E",
                tenant="south",
                hook="order-sign",
                modality="xray",
                decision="not-indicated",
            )
        )
    assert len(rows) == 500
    return rows


def load_known_rows(engine: Engine) -> None:
    """Insert the known data set."""
    with engine.begin() as connection:
        connection.execute(insert(evaluation), known_rows())

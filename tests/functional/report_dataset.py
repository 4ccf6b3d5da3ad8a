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

pilot_rows(): a silent pilot and the live months after it, period 2026-05-01..2026-08-31, all
MRI, clinician c-P, tenant north (see test_report_pilot.py for the expected figures):
S  shadow, patients pS0..pS99, order-select on May 12 (i < 50) or Jun 20 (i >= 50), 09:00:
   i < 60 not-indicated, 60-89 indicated, 90-99 insufficient-data; no feedback (no card was
   shown). Signed 2 hours later (order-sign, same decision, shadow): i < 40 and 60 <= i < 80.
L  live, patients pL0..pL99, order-select on Jul 10 (j < 50) or Aug 20 (j >= 50), 09:00:
   j < 60 not-indicated with, by j % 4, 0 cancelled, 1 replaced, 2 overridden, 3 none;
   60-89 indicated, 90-99 insufficient-data. Signed 2 hours later (order-sign, same decision,
   live): the overridden (the sign card overridden too) and no-response not-indicated ones,
   and 60 <= j < 80.

watch_rows(): the missed-alarm watch, period 2026-10-01..2026-11-30, one patient each (pM*),
09:00, order-select unless said, rule set 2026.10 before an urgent evaluation on 2026.11:
M0 not-indicated Oct 5, urgent Nov 1 (27 days): listed
M1 insufficient-data Oct 5, urgent 2027-01-03 09:00 (exactly 90 days, after the period): listed
M2 not-indicated Oct 5, urgent 91 days later: not listed
M3 not-indicated Oct 5 in shadow mode, urgent Oct 20 (15 days, live): listed
M4 urgent Oct 5, then not-indicated Oct 10 (the urgent one came first): not listed
M5 indicated Oct 5, urgent Oct 15 (indicated is no reassurance): not listed
M6 not-indicated Oct 5 09:00 (order-select) and 09:05 (order-sign), urgent Oct 25 and again
   Nov 5: listed twice, each with the Oct 25 evaluation (20 days and 19.996 days -> 20.0)
M7 not-indicated Sep 20 (before the period), urgent Oct 10: not listed
M8 not-indicated Nov 29, urgent Dec 10 (11 days, after the period): listed
M9 not-indicated and urgent in the same hook call (two orders, one moment): not listed
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
    mode: str = "live",
    policy_version: str = "test",
    criteria: str = "",
    reasons: str | None = None,
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
        "criteria_met": criteria,
        "reasons_met": reasons,
        "policy_version": policy_version,
        "card_uuid": str(uuid.uuid4()),
        "consult_id": str(uuid.uuid4()),
        "latency_ms": 5,
        "response": response,
        "override_system": reason[0] if reason else None,
        "override_code": reason[1] if reason else None,
        "responded_at": when + timedelta(minutes=1) if response else None,
        "mode": mode,
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


def pilot_rows() -> list[dict[str, Any]]:
    """The silent pilot and live rows described in the module docstring (310 rows)."""
    rows = []
    who = {"clinician": "c-P", "tenant": "north", "modality": "mri"}
    for i in range(100):
        when = (
            datetime(2026, 5, 12, 9, 0, tzinfo=UTC)
            if i < 50
            else datetime(2026, 6, 20, 9, 0, tzinfo=UTC)
        )
        decision = "not-indicated" if i < 60 else "indicated" if i < 90 else "insufficient-data"
        shared = {"patient": f"pS{i}", "decision": decision, "mode": "shadow", **who}
        rows.append(_row(when, hook="order-select", **shared))
        if i < 40 or 60 <= i < 80:
            rows.append(_row(when + timedelta(hours=2), hook="order-sign", **shared))
    responses = ["cancelled", "replaced", "overridden", None]
    for j in range(100):
        when = (
            datetime(2026, 7, 10, 9, 0, tzinfo=UTC)
            if j < 50
            else datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
        )
        decision = "not-indicated" if j < 60 else "indicated" if j < 90 else "insufficient-data"
        response = responses[j % 4] if j < 60 else None
        reason = (NA, "prefers-alternative") if response == "overridden" else None
        shared = {"patient": f"pL{j}", "decision": decision, **who}
        rows.append(_row(when, hook="order-select", response=response, reason=reason, **shared))
        if (j < 60 and response in ("overridden", None)) or 60 <= j < 80:
            rows.append(
                _row(
                    when + timedelta(hours=2),
                    hook="order-sign",
                    response=response,
                    reason=reason,
                    **shared,
                )
            )
    assert len(rows) == 310
    return rows


URGENT_CRITERIA = {"criteria": "red-flag", "reasons": "red-flag:cauda-equina"}


def watch_consult_id(index: int) -> str:
    """The consult id of the index-th row of watch_rows()."""
    return f"00000000-0000-4000-8000-{index:012d}"


def watch_rows() -> list[dict[str, Any]]:
    """The missed-alarm rows described in the module docstring."""
    rows = []

    def add(patient: str, when: datetime, decision: str, **extra: Any) -> dict[str, Any]:
        urgent = decision == "urgent"
        values = {
            "patient": patient,
            "clinician": "c-W",
            "tenant": "south",
            "hook": "order-select",
            "modality": "mri",
            "decision": decision,
            "policy_version": "2026.11" if urgent else "2026.10",
            **(URGENT_CRITERIA if urgent else {}),
            **extra,
        }
        row = _row(when, **values)
        row["consult_id"] = watch_consult_id(len(rows))  # known ids: the test names them
        rows.append(row)
        return row

    oct5 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    add("pM0", oct5, "not-indicated")
    add("pM0", datetime(2026, 11, 1, 9, 0, tzinfo=UTC), "urgent")
    add("pM1", oct5, "insufficient-data", criteria="neuro-exam-missing")
    add("pM1", oct5 + timedelta(days=90), "urgent", hook="order-sign")
    add("pM2", oct5, "not-indicated")
    add("pM2", oct5 + timedelta(days=91), "urgent")
    add("pM3", oct5, "not-indicated", mode="shadow")
    add("pM3", datetime(2026, 10, 20, 9, 0, tzinfo=UTC), "urgent")
    add("pM4", oct5, "urgent")
    add("pM4", datetime(2026, 10, 10, 9, 0, tzinfo=UTC), "not-indicated")
    add("pM5", oct5, "indicated")
    add("pM5", datetime(2026, 10, 15, 9, 0, tzinfo=UTC), "urgent")
    add("pM6", oct5, "not-indicated")
    add("pM6", oct5 + timedelta(minutes=5), "not-indicated", hook="order-sign")
    add("pM6", datetime(2026, 10, 25, 9, 0, tzinfo=UTC), "urgent")
    add("pM6", datetime(2026, 11, 5, 9, 0, tzinfo=UTC), "urgent")
    add("pM7", datetime(2026, 9, 20, 9, 0, tzinfo=UTC), "not-indicated")
    add("pM7", datetime(2026, 10, 10, 9, 0, tzinfo=UTC), "urgent")
    add("pM8", datetime(2026, 11, 29, 9, 0, tzinfo=UTC), "not-indicated")
    add("pM8", datetime(2026, 12, 10, 9, 0, tzinfo=UTC), "urgent")
    add("pM9", oct5, "not-indicated", modality="xray")
    add("pM9", oct5, "urgent")
    return rows


def load_known_rows(engine: Engine, *, pilot: bool = False) -> None:
    """Insert the known data set (and with `pilot` the pilot and watch rows as well)."""
    rows = known_rows() + (pilot_rows() + watch_rows() if pilot else [])
    with engine.begin() as connection:
        connection.execute(insert(evaluation), rows)

"""A known data set for the mirror report, its figures worked out by hand (test_report_mirror.py).

Period 2026-04-01..2026-04-30; every evaluation order-select MRI on Apr 10 09:00 for its own
patient; clinicians are the keyed pseudonyms of "Practitioner/<name>" under the test key.
Organisation west: m0 (the clinician of the report) and peers m1..m7. Per clinician,
(evaluations, not indicated, of those avoided = cancelled, overridden with prefers-alternative):
    m0 (10, 4, 2, 1 — but overridden with red-flag-not-recorded)
    m1 (10, 2, 1, 1)   m2 (10, 3, 0, 3)   m3 (10, 5, 5, 0)   m4 (10, 6, 3, 3)
    m5 (10, 7, 7, 0)   m6 (10, 8, 2, 2)   m7 (5, 0, 0, 0)
The rest of each clinician's evaluations are indicated. Every overridden patient has a signed
lumbar imaging order on May 5 (25 days later, after the period), so the 28-day measure is
without imaging = not indicated − overridden.
Organisation tiny: t0..t4, one not-indicated evaluation each (t0 has four peers, fewer than 5).
Organisation east: e0 alone (three not-indicated evaluations); e0 also has two indicated
ones in organisation elsewhere, so east, where e0 made most, is e0's organisation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from cds_service.audit.models import evaluation
from cds_service.audit.pseudonyms import Pseudonymiser
from tests.functional.report_dataset import LOCAL, NA, _row

APRIL_10 = datetime(2026, 4, 10, 9, 0, tzinfo=UTC)
WEST = {
    "m0": (10, 4, 2, 1),
    "m1": (10, 2, 1, 1),
    "m2": (10, 3, 0, 3),
    "m3": (10, 5, 5, 0),
    "m4": (10, 6, 3, 3),
    "m5": (10, 7, 7, 0),
    "m6": (10, 8, 2, 2),
    "m7": (5, 0, 0, 0),
}


def practitioner(name: str) -> str:
    """The context.userId of a clinician of this data set."""
    return f"Practitioner/{name}"


def mirror_rows(pseudonym: Pseudonymiser) -> list[dict[str, Any]]:
    """The rows described in the module docstring."""
    rows = []

    def add(name: str, tenant: str, index: int, decision: str, **extra: Any) -> None:
        who = {
            "patient": f"p-{tenant}-{name}-{index}",
            "clinician": pseudonym("clinician", practitioner(name)),
            "tenant": tenant,
            "modality": "mri",
        }
        rows.append(_row(APRIL_10, hook="order-select", decision=decision, **who, **extra))
        if extra.get("response") == "overridden":
            later = APRIL_10 + timedelta(days=25)
            rows.append(_row(later, hook="order-sign", decision="indicated", **who))

    for name, (evaluations, not_indicated, avoided, overridden) in WEST.items():
        reason = (LOCAL, "red-flag-not-recorded") if name == "m0" else (NA, "prefers-alternative")
        for i in range(evaluations):
            if i < avoided:
                add(name, "west", i, "not-indicated", response="cancelled")
            elif i < avoided + overridden:
                add(name, "west", i, "not-indicated", response="overridden", reason=reason)
            elif i < not_indicated:
                add(name, "west", i, "not-indicated")
            else:
                add(name, "west", i, "indicated")
    for k in range(5):
        add(f"t{k}", "tiny", 0, "not-indicated", response="cancelled" if k % 2 else None)
    for i in range(3):
        add("e0", "east", i, "not-indicated")
    for i in range(2):
        add("e0", "elsewhere", i, "indicated")
    return rows


def load_mirror_rows(engine: Engine, pseudonym: Pseudonymiser) -> None:
    """Insert the mirror data set."""
    with engine.begin() as connection:
        connection.execute(insert(evaluation), mirror_rows(pseudonym))

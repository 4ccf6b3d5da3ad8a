"""Covering indexes for the report: its scans and look-aheads read indexes, not the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "audit_evaluation"
INDEXES = {
    # "a signed lumbar order for this patient between t and t + N days" (re-orders, follow-up)
    "ix_audit_evaluation_patient_signed": ["patient", "ts", "hook", "response"],
    # the breakdown by month, modality, decision, response and override reason
    "ix_audit_evaluation_report": [
        "month",
        "modality",
        "decision",
        "response",
        "override_system",
        "override_code",
        "ts",
        "patient",
    ],
    # per-clinician and per-organisation tables
    "ix_audit_evaluation_clinician_report": ["clinician", "decision", "response", "ts", "patient"],
    "ix_audit_evaluation_tenant_report": ["tenant", "decision", "response", "ts", "patient"],
    # first not-indicated evaluation per patient (28-day measure)
    "ix_audit_evaluation_decision_patient": ["decision", "patient", "ts"],
}


def upgrade() -> None:
    """Replace the plain patient and clinician indexes by covering ones."""
    op.drop_index("ix_audit_evaluation_patient_ts", table_name=TABLE)
    op.drop_index("ix_audit_evaluation_clinician", table_name=TABLE)
    for name, columns in INDEXES.items():
        op.create_index(name, TABLE, columns)


def downgrade() -> None:
    """Back to the indexes of 0001."""
    for name in INDEXES:
        op.drop_index(name, table_name=TABLE)
    op.create_index("ix_audit_evaluation_patient_ts", TABLE, ["patient", "ts"])
    op.create_index("ix_audit_evaluation_clinician", TABLE, ["clinician"])

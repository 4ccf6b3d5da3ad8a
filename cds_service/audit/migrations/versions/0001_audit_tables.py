"""Audit tables: evaluations, the suggestions on their cards, and clinician feedback.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three audit tables and their indexes."""
    op.create_table(
        "audit_evaluation",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("hook_instance", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("clinician", sa.String(64), nullable=False),
        sa.Column("encounter", sa.String(64)),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("order_system", sa.String(128)),
        sa.Column("order_code", sa.String(32)),
        sa.Column("modality", sa.String(8), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("criteria_met", sa.String(512), nullable=False),
        sa.Column("policy_version", sa.String(32), nullable=False),
        sa.Column("card_uuid", sa.String(36), unique=True),
        sa.Column("consult_id", sa.String(36), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("response", sa.String(16)),
        sa.Column("override_system", sa.String(128)),
        sa.Column("override_code", sa.String(64)),
        sa.Column("responded_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_audit_evaluation_ts", "audit_evaluation", ["ts"])
    op.create_index("ix_audit_evaluation_patient_ts", "audit_evaluation", ["patient", "ts"])
    op.create_index("ix_audit_evaluation_clinician", "audit_evaluation", ["clinician"])
    op.create_table(
        "audit_suggestion",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column(
            "evaluation_id",
            Id,
            sa.ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_audit_suggestion_evaluation_id", "audit_suggestion", ["evaluation_id"])
    op.create_table(
        "audit_feedback",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "evaluation_id",
            Id,
            sa.ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("card_uuid", sa.String(36), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("response", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.String(400)),
        sa.Column("override_system", sa.String(128)),
        sa.Column("override_code", sa.String(64)),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_feedback_evaluation_id", "audit_feedback", ["evaluation_id"])


def downgrade() -> None:
    """Drop the audit tables."""
    op.drop_table("audit_feedback")
    op.drop_table("audit_suggestion")
    op.drop_table("audit_evaluation")

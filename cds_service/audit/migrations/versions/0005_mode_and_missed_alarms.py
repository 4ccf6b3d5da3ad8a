"""The service mode of each row (live or shadow), the reasons met, and the indexes that read them.

`mode` is 'live' for every row stored before (there was no silent mode); `reasons_met` (the
met criteria as "criterion:reason" codes, for the missed-alarm review) is NULL for those rows.
The 28-day measure's index gains `mode`, so that it is still read index-only when split by
mode; the missed-alarm watch looks up a patient's earlier reassuring evaluations through the
same index (decision, patient, ts). A new covering index serves the shadow/live comparison.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "audit_evaluation"
DECISION_PATIENT = "ix_audit_evaluation_decision_patient"
MODE_REPORT = "ix_audit_evaluation_mode_report"


def upgrade() -> None:
    """Add audit_evaluation.mode (default 'live'), reasons_met and the indexes that read them."""
    # A constant default: PostgreSQL 11+ adds it without rewriting the table, SQLite in place.
    op.add_column(TABLE, sa.Column("mode", sa.String(8), nullable=False, server_default="live"))
    op.add_column(TABLE, sa.Column("reasons_met", sa.String(512)))
    op.drop_index(DECISION_PATIENT, table_name=TABLE)
    op.create_index(DECISION_PATIENT, TABLE, ["decision", "patient", "mode", "ts"])
    op.create_index(MODE_REPORT, TABLE, ["mode", "decision", "hook", "response", "ts"])


def downgrade() -> None:
    """Back to 0004: the indexes of 0002 and no mode column."""
    op.drop_index(MODE_REPORT, table_name=TABLE)
    op.drop_index(DECISION_PATIENT, table_name=TABLE)
    op.create_index(DECISION_PATIENT, TABLE, ["decision", "patient", "ts"])
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("reasons_met")
        batch.drop_column("mode")

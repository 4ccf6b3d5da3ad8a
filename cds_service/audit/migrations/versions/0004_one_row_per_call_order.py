"""One audit row per (hookInstance, hook, order): a retried hook call updates its row.

Rows stored twice before this revision (the same call retried) are merged first: the latest
row is kept, the feedback of the others moves to it (and their response, when it has none),
and the others go.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "uq_audit_evaluation_call_order"
KEY = ["hook_instance", "hook", "order_ref"]
RESPONSE = ["response", "override_system", "override_code", "responded_at"]


def upgrade() -> None:
    """Merge rows of retried calls, then make the call and order unique."""
    _merge_duplicates(op.get_bind())
    op.create_index(INDEX, "audit_evaluation", KEY, unique=True)


def downgrade() -> None:
    """Allow duplicates again (merged rows stay merged)."""
    op.drop_index(INDEX, table_name="audit_evaluation")


def _merge_duplicates(connection: sa.Connection) -> None:
    meta = sa.MetaData()
    evaluation = sa.Table("audit_evaluation", meta, autoload_with=connection)
    suggestion = sa.Table("audit_suggestion", meta, autoload_with=connection)
    feedback = sa.Table("audit_feedback", meta, autoload_with=connection)
    key = [evaluation.c[name] for name in KEY]
    groups = connection.execute(sa.select(*key).group_by(*key).having(sa.func.count() > 1)).all()
    for group in groups:
        rows = connection.execute(
            sa.select(evaluation)
            .where(*(column == value for column, value in zip(key, group, strict=True)))
            .order_by(evaluation.c.ts.desc(), evaluation.c.id.desc())
        ).all()
        kept, others = rows[0], rows[1:]
        other_ids = [row.id for row in others]
        responded = [row for row in others if row.responded_at is not None]
        if kept.responded_at is None and responded:
            latest = max(responded, key=lambda row: row.responded_at)
            connection.execute(
                sa.update(evaluation)
                .where(evaluation.c.id == kept.id)
                .values({name: getattr(latest, name) for name in RESPONSE})
            )
        connection.execute(
            sa.update(feedback)
            .where(feedback.c.evaluation_id.in_(other_ids))
            .values(evaluation_id=kept.id)
        )
        connection.execute(sa.delete(suggestion).where(suggestion.c.evaluation_id.in_(other_ids)))
        connection.execute(sa.delete(evaluation).where(evaluation.c.id.in_(other_ids)))

"""The report's rollup tables, and triggers that log updated and deleted evaluations for them.

The rollups start empty: `cds-service report refresh` fills them (the first run reads every
row). Only UPDATE and DELETE are logged by triggers (feedback, a retried call's newer copy,
purge); inserts, which every hook call makes, are found by the refresh through the id
high-water mark, so the hook path pays nothing for the rollups.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _people() -> list[sa.Column]:
    return [
        sa.Column("clinician", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("evaluations", sa.BigInteger, nullable=False),
        sa.Column("not_indicated", sa.BigInteger, nullable=False),
        sa.Column("avoided", sa.BigInteger, nullable=False),
        sa.Column("overridden", sa.BigInteger, nullable=False),
        sa.Column("no_response", sa.BigInteger, nullable=False),
        sa.Column("reordered", sa.BigInteger, nullable=False),
    ]


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_TRIGGERS = (
    """CREATE TRIGGER report_change_on_update AFTER UPDATE ON audit_evaluation
    BEGIN
        INSERT INTO report_change (patient, ts) VALUES (OLD.patient, OLD.ts);
        INSERT INTO report_change (patient, ts)
            SELECT NEW.patient, NEW.ts WHERE NEW.patient != OLD.patient OR NEW.ts != OLD.ts;
    END""",
    """CREATE TRIGGER report_change_on_delete AFTER DELETE ON audit_evaluation
    BEGIN
        INSERT INTO report_change (patient, ts) VALUES (OLD.patient, OLD.ts);
    END""",
)
POSTGRES_TRIGGERS = (
    """CREATE FUNCTION report_change_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO report_change (patient, ts) VALUES (OLD.patient, OLD.ts);
        IF TG_OP = 'UPDATE' AND (NEW.patient <> OLD.patient OR NEW.ts <> OLD.ts) THEN
            INSERT INTO report_change (patient, ts) VALUES (NEW.patient, NEW.ts);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER report_change_on_change AFTER UPDATE OR DELETE ON audit_evaluation
    FOR EACH ROW EXECUTE FUNCTION report_change_log()""",
)


def upgrade() -> None:
    """Create the rollup tables (empty) and the change-log triggers."""
    op.create_table(
        "report_day",
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("modality", sa.String(8), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("response", sa.String(16)),
        sa.Column("override_system", sa.String(128)),
        sa.Column("override_code", sa.String(64)),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("first_ts", sa.BigInteger, nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=False),
        sa.Column("reordered", sa.BigInteger, nullable=False),
        sa.Column("followed", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_report_day_day", "report_day", ["day"])
    op.create_table(
        "report_clinician_day",
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        *_people(),
    )
    op.create_index("ix_report_clinician_day_day", "report_clinician_day", ["day"])
    op.create_table(
        "report_clinician_month", sa.Column("month", sa.String(7), nullable=False), *_people()
    )
    op.create_index("ix_report_clinician_month_month", "report_clinician_month", ["month"])
    op.create_table(
        "report_episode",
        sa.Column("patient", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("prev_day", sa.Integer),
        sa.Column("imaged", sa.Integer, nullable=False),
    )
    op.create_index("ix_report_episode_day", "report_episode", ["day"])
    op.create_table(
        "report_episode_day",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("prev_day", sa.Integer),
        sa.Column("imaged", sa.Integer, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_report_episode_day_day",
        "report_episode_day",
        ["day", "kind", "prev_day", "imaged", "n"],
    )
    op.create_table(
        "report_missed_alarm",
        sa.Column("evaluation_id", Id, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_report_missed_alarm_ts",
        "report_missed_alarm",
        ["ts", "evaluation_id", "decision", "mode", "patient"],
    )
    op.create_table(
        "report_change",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_refresh_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_refresh_gap",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("noticed_ms", sa.BigInteger, nullable=False),
    )
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers and the rollup tables (they are rebuilt from audit_evaluation)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER report_change_on_change ON audit_evaluation")
        op.execute("DROP FUNCTION report_change_log()")
    else:
        op.execute("DROP TRIGGER report_change_on_update")
        op.execute("DROP TRIGGER report_change_on_delete")
    for table in (
        "report_refresh_gap",
        "report_refresh_state",
        "report_change",
        "report_missed_alarm",
        "report_episode_day",
        "report_episode",
        "report_clinician_month",
        "report_clinician_day",
        "report_day",
    ):
        op.drop_table(table)

"""The audit tables (SQLAlchemy Core); Alembic migrations under migrations/ create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)

from cds_service.database import Id, metadata

# Codes of the clinician's response to a card, derived from CDS Hooks feedback.
CANCELLED = "cancelled"  # accepted a suggestion that deletes the draft order
REPLACED = "replaced"  # accepted a suggestion that deletes it and creates an alternative
ACCEPTED = "accepted"  # accepted another suggestion (or none we recognise)
OVERRIDDEN = "overridden"
RESPONSES = (CANCELLED, REPLACED, ACCEPTED, OVERRIDDEN)

# The service's CDS_MODE when the row was written: live (cards shown) or shadow (silent pilot:
# judged and audited, nothing shown). Rows written before migration 0005 are live.
LIVE, SHADOW = "live", "shadow"
MODES = (LIVE, SHADOW)

# Missed-alarm watch: a reassuring evaluation (decisions below) of a patient who has an urgent
# one within this many days after it is listed for clinical review.
MISSED_ALARM_DAYS = 90
REASSURING = ("not-indicated", "insufficient-data")
URGENT = "urgent"

evaluation = Table(
    "audit_evaluation",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # The same moment as epoch milliseconds and as "YYYY-MM", so that windows ("within 42 days")
    # and monthly groups are plain integer and string comparisons on SQLite and PostgreSQL alike.
    Column("ts", BigInteger, nullable=False),
    Column("month", String(7), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("hook", String(32), nullable=False),
    Column("hook_instance", String(64), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("clinician", String(64), nullable=False),
    Column("encounter", String(64)),
    Column("order_ref", String(64), nullable=False),
    Column("order_system", String(128)),
    Column("order_code", String(32)),
    Column("modality", String(8), nullable=False),
    Column("decision", String(24), nullable=False),
    Column("criteria_met", String(512), nullable=False),
    Column("policy_version", String(32), nullable=False),
    Column("card_uuid", String(36), unique=True),
    Column("consult_id", String(36), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    # The clinician's latest response to the card (NULL: no feedback yet), kept on the row so
    # that reports are single-table aggregates; audit_feedback keeps every message received.
    Column("response", String(16)),
    Column("override_system", String(128)),
    Column("override_code", String(64)),
    Column("responded_at", DateTime(timezone=True)),
    Column("mode", String(8), nullable=False, server_default=LIVE),
    # The met criteria as "criterion:reason" codes ("red-flag:cauda-equina"), so that a clinical
    # review sees which pattern fired, not only "red-flag" (NULL: stored before migration 0005).
    Column("reasons_met", String(512)),
    # One row per order of one hook call, however often the call is retried (migration 0004).
    Index("uq_audit_evaluation_call_order", "hook_instance", "hook", "order_ref", unique=True),
    # The report's indexes (migration 0002): covering, so its scans read indexes, not rows.
    Index("ix_audit_evaluation_ts", "ts"),
    Index("ix_audit_evaluation_patient_signed", "patient", "ts", "hook", "response"),
    Index(
        "ix_audit_evaluation_report",
        "month",
        "modality",
        "decision",
        "response",
        "override_system",
        "override_code",
        "ts",
        "patient",
    ),
    Index(
        "ix_audit_evaluation_clinician_report", "clinician", "decision", "response", "ts", "patient"
    ),
    Index("ix_audit_evaluation_tenant_report", "tenant", "decision", "response", "ts", "patient"),
    # First not-indicated evaluation per patient and mode (28-day measure), and the earlier
    # reassuring evaluations of a patient with an urgent one (missed-alarm watch; migration 0005).
    Index("ix_audit_evaluation_decision_patient", "decision", "patient", "mode", "ts"),
    # Silent pilot against live: the comparison's one scan (migration 0005).
    Index("ix_audit_evaluation_mode_report", "mode", "decision", "hook", "response", "ts"),
)

suggestion = Table(
    "audit_suggestion",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column(
        "evaluation_id",
        Id,
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),  # cancel | replace | other
)

feedback = Table(
    "audit_feedback",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "evaluation_id",
        Id,
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("card_uuid", String(36), nullable=False),
    Column("outcome", String(16), nullable=False),  # accepted | overridden
    Column("response", String(16), nullable=False),  # one of RESPONSES
    Column("accepted_suggestions", String(400)),  # comma-separated suggestion uuids
    Column("override_system", String(128)),
    Column("override_code", String(64)),
    Column("outcome_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # SHA-256 of the normalised feedback item: a repeated message is recognised and ignored.
    Column("digest", String(64), nullable=False, unique=True),
)

# The report's rollup tables (migration 0007) share this metadata, so Alembic compares them too.
from cds_service.audit import rollup_models as _rollup_models  # noqa: E402, F401

"""The report's rollup tables (migration 0007): daily figures kept by `cds-service report refresh`.

Every table is derived from audit_evaluation and can be rebuilt from it (`report refresh
--full`). Days are whole UTC days numbered from 1970-01-01 (ts // 86,400,000), so that day
arithmetic is plain integers on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from cds_service.audit.models import Id, metadata

# Counts per day and every dimension of the report's breakdowns but the people: the breakdown,
# the shadow/live comparison (first and last moment per group), and per group how many avoided
# scans were re-ordered and how many urgent evaluations were followed through.
day_figures = Table(
    "report_day",
    metadata,
    Column("day", Integer, nullable=False),
    Column("month", String(7), nullable=False),
    Column("modality", String(8), nullable=False),
    Column("decision", String(24), nullable=False),
    Column("hook", String(32), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("response", String(16)),
    Column("override_system", String(128)),
    Column("override_code", String(64)),
    Column("n", BigInteger, nullable=False),
    Column("first_ts", BigInteger, nullable=False),
    Column("last_ts", BigInteger, nullable=False),
    Column("reordered", BigInteger, nullable=False),
    Column("followed", BigInteger, nullable=False),
    Index("ix_report_day_day", "day"),
)


def _people_columns() -> list[Column]:
    return [
        Column("clinician", String(64), nullable=False),
        Column("tenant", String(64), nullable=False),
        Column("evaluations", BigInteger, nullable=False),
        Column("not_indicated", BigInteger, nullable=False),
        Column("avoided", BigInteger, nullable=False),
        Column("overridden", BigInteger, nullable=False),
        Column("no_response", BigInteger, nullable=False),
        Column("reordered", BigInteger, nullable=False),
    ]


# The per-clinician and per-organisation tables (and the mirror reports built on them), per
# day for the partial months at a period's edges and per month for the whole months inside.
clinician_day = Table(
    "report_clinician_day",
    metadata,
    Column("day", Integer, nullable=False),
    Column("month", String(7), nullable=False),
    *_people_columns(),
    Index("ix_report_clinician_day_day", "day"),
)
clinician_month = Table(
    "report_clinician_month",
    metadata,
    Column("month", String(7), nullable=False),
    *_people_columns(),
    Index("ix_report_clinician_month_month", "month"),
)

# The 28-day measure. One row per patient, kind ('all' or a mode) and day with a not-indicated
# evaluation: the patient's previous such day (NULL: none) and whether the day's first one was
# followed by a signed order within 28 days. A period starting on day S indexes a patient at
# the row with S <= day and (prev_day < S or none): exactly one row per patient, so episodes
# are counts of rows, summed per (day, prev_day) in episode_days.
episode = Table(
    "report_episode",
    metadata,
    Column("patient", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("prev_day", Integer),
    Column("imaged", Integer, nullable=False),
    Index("ix_report_episode_day", "day"),
)
episode_days = Table(
    "report_episode_day",
    metadata,
    Column("kind", String(8), nullable=False),
    Column("day", Integer, nullable=False),
    Column("prev_day", Integer),
    Column("imaged", Integer, nullable=False),
    Column("n", BigInteger, nullable=False),
    Index("ix_report_episode_day_day", "day", "kind", "prev_day", "imaged", "n"),
)

# The missed-alarm watch: one row per reassuring evaluation followed by an urgent one within
# MISSED_ALARM_DAYS, with the report's listing item as JSON, so that the report counts and
# pages it by ts without reading evaluations.
missed_alarm = Table(
    "report_missed_alarm",
    metadata,
    Column("evaluation_id", Id, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("patient", String(64), nullable=False),
    Column("decision", String(24), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("item", Text, nullable=False),
    Index("ix_report_missed_alarm_ts", "ts", "evaluation_id", "decision", "mode", "patient"),
)

# Evaluations updated (feedback, a retried call's newer copy) or deleted (purge) since the
# last refresh, written by triggers: the (patient, ts) before and after. New rows are found by
# their id above the high-water mark instead, so that hook calls inserting rows pay nothing.
change = Table(
    "report_change",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
)

# The refresh's high-water marks ("evaluation_id", "refreshed_at_ms", "covered_ts").
refresh_state = Table(
    "report_refresh_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# PostgreSQL only: evaluation ids below the mark that were missing when it was set (a
# transaction still open, or rolled back), looked at again until they appear or are old.
refresh_gap = Table(
    "report_refresh_gap",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("noticed_ms", BigInteger, nullable=False),
)

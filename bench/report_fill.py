"""Fills an audit store with N synthetic evaluations inside the database (for bench/report.py).

Generating 10,000,000 rows in Python and inserting them through nine indexes takes hours on
a shared 2-core machine, so the rows are computed by one INSERT ... SELECT over a series
(generate_series on PostgreSQL, a recursive CTE on SQLite) with the report's indexes dropped
and rebuilt afterwards. Each field is a fixed hash of the row number (multiplicative hashing
modulo 2^31 - 1), so SQLite and PostgreSQL hold the very same rows, and a field read twice
is the same. The mixes follow bench/report.py's synthetic_rows: 12 months of 2025, N / 4
patients, 2,000 clinicians, three tenants, decisions 3/35/45/17 % (urgent, indicated,
not indicated, insufficient data), the first three months a silent pilot without feedback.
"""

# ruff: noqa: S608 - the SQL is built from constants of this file, no input
from __future__ import annotations

from sqlalchemy import Engine, text

from cds_service.audit.models import evaluation

M = 2_147_483_647  # a prime: (g * a + b) % M runs through every residue for g < M
START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
PILOT_END_MS = 1_743_465_600_000  # 2025-04-01T00:00:00Z
YEAR_S = 365 * 86_400


def _h(a: int, b: int) -> str:
    """A hash of the row number g in 0..M-1 (SQL)."""
    return f"((g * {a} + {b}) % {M})"


def _share(a: int, b: int) -> str:
    """A hash of g in [0, 1) (SQL)."""
    return f"({_h(a, b)} * 1.0 / {M})"


def _select(dialect: str, first: int, count: int, day_ms: int | None) -> str:
    """The SELECT of rows first+1 .. first+count (day_ms: all on that day instead of 2025)."""
    if day_ms is None:
        ts = f"({START_MS} + ({_h(48271, 11)} % {YEAR_S}) * 1000)"
    else:
        ts = f"({day_ms} + ({_h(48271, 11)} % 86400) * 1000)"
    decision = _share(1812433253, 3)
    response = _share(1566083941, 5)
    hook = f"CASE WHEN {_h(1140671485, 7)} % 2 = 0 THEN 'order-select' ELSE 'order-sign' END"
    modality = _share(1327217885, 13)
    if dialect == "postgresql":
        hexed = "lpad(to_hex({}), 64, '0')"
        md5 = "md5({})"
        series = f"generate_series({first + 1}::bigint, {first + count}::bigint) AS s(g)"
        month = "to_char(to_timestamp(ts / 1000) AT TIME ZONE 'UTC', 'YYYY-MM')"
        recorded = "to_timestamp(ts / 1000.0)"
        cat = "({})::text"
    else:
        hexed = "printf('%064x', {})"
        md5 = "printf('%032x', {})"
        series = "series AS s"
        month = "strftime('%Y-%m', ts / 1000, 'unixepoch')"
        recorded = "strftime('%Y-%m-%d %H:%M:%S', ts / 1000, 'unixepoch')"
        cat = "{}"
    patients = max(1, (first + count) // 4) if day_ms is None else max(1, first // 4)
    inner = f"""
        SELECT g, {ts} AS ts,
          CASE WHEN {decision} < 0.03 THEN 'urgent' WHEN {decision} < 0.38 THEN 'indicated'
               WHEN {decision} < 0.83 THEN 'not-indicated' ELSE 'insufficient-data' END
            AS decision,
          {response} AS r, {hook} AS hook, {modality} AS m,
          {_h(22695477, 1)} % {patients} AS patient_no,
          {_h(1103515245, 12345)} % 2000 AS clinician_no,
          {_h(1013904223, 1)} % 3 AS tenant_no,
          {_h(214013, 2531011)} % 4 AS reason_no,
          {_h(1664525, 1013904223)} % 3 AS urgent_no
        FROM {series}"""
    response_case = f"""CASE
          WHEN ts < {PILOT_END_MS} THEN NULL
          WHEN decision = 'not-indicated' THEN
            CASE WHEN r < 0.25 THEN 'cancelled' WHEN r < 0.40 THEN 'replaced'
                 WHEN r < 0.70 THEN 'overridden' WHEN r < 0.75 THEN 'accepted' END
          WHEN decision = 'urgent' AND r < 0.2 THEN 'accepted' END"""
    overridden = f"ts >= {PILOT_END_MS} AND decision = 'not-indicated' AND r >= 0.40 AND r < 0.70"
    reasons = (
        "CASE urgent_no WHEN 0 THEN 'red-flag:cauda-equina' "
        "WHEN 1 THEN 'red-flag:fever-with-risk-factor' ELSE 'neuro-deficit:mrc-2' END"
    )
    return f"""
      SELECT {recorded}, ts, {month}, 'lumbar-imaging-' || hook, hook,
        {md5.format(cat.format("g"))},
        CASE tenant_no WHEN 0 THEN 'north' WHEN 1 THEN 'south' ELSE 'east' END,
        {hexed.format("patient_no")}, {hexed.format("clinician_no")}, NULL,
        {md5.format(cat.format("g + 1"))}, 'http://www.ama-assn.org/go/cpt',
        CASE WHEN m < 0.55 THEN '72148' WHEN m < 0.90 THEN '72100' ELSE '72131' END,
        CASE WHEN m < 0.55 THEN 'mri' WHEN m < 0.90 THEN 'xray' ELSE 'ct' END,
        decision,
        CASE WHEN decision = 'urgent' THEN
          CASE urgent_no WHEN 2 THEN 'neuro-deficit' ELSE 'red-flag' END ELSE '' END,
        'bench', {md5.format(cat.format("g + 2"))}, {md5.format(cat.format("g + 3"))},
        5 + g % 195,
        {response_case},
        CASE WHEN {overridden}
          THEN 'https://lumbar-imaging-cds.local/CodeSystem/override-reason' END,
        CASE WHEN {overridden} THEN
          CASE reason_no WHEN 0 THEN 'prefers-alternative' WHEN 1 THEN 'red-flag-not-recorded'
                         WHEN 2 THEN 'expert-contradicts' ELSE 'other' END END,
        CASE WHEN ({response_case}) IS NOT NULL THEN {recorded} END,
        CASE WHEN ts < {PILOT_END_MS} THEN 'shadow' ELSE 'live' END,
        CASE WHEN decision = 'urgent' THEN {reasons} ELSE '' END
      FROM ({inner}) AS x"""


COLUMNS = [c.name for c in evaluation.columns if c.name != "id"]
SECONDARY = [index for index in evaluation.indexes]


def fill(engine: Engine, count: int, *, drop_indexes: bool = True, chunk: int = 1_000_000) -> None:
    """Insert `count` rows (ids 1..count) in chunks, the indexes rebuilt at the end."""
    dialect = engine.dialect.name
    if drop_indexes:
        with engine.begin() as connection:
            for index in SECONDARY:
                connection.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    names = ", ".join(COLUMNS)
    for first in range(0, count, chunk):
        size = min(chunk, count - first)
        with engine.begin() as connection:
            prefix = ""
            if dialect == "sqlite":
                prefix = (
                    f"WITH RECURSIVE series(g) AS (SELECT {first + 1} UNION ALL "
                    f"SELECT g + 1 FROM series WHERE g < {first + size}) "
                )
            connection.execute(
                text(
                    f"{prefix}INSERT INTO audit_evaluation ({names}) "
                    f"{_select(dialect, first, size, None)}"
                )
            )
    if drop_indexes:
        with engine.begin() as connection:
            if dialect == "postgresql":
                connection.execute(text("SET maintenance_work_mem = '512MB'"))
            for index in SECONDARY:
                index.create(connection)


def add_day(engine: Engine, first: int, count: int, day_ms: int) -> None:
    """Insert `count` more rows (ids first+1..) on one day, as a day of traffic arrives."""
    names = ", ".join(COLUMNS)
    prefix = ""
    if engine.dialect.name == "sqlite":
        prefix = (
            f"WITH RECURSIVE series(g) AS (SELECT {first + 1} UNION ALL "
            f"SELECT g + 1 FROM series WHERE g < {first + count}) "
        )
    with engine.begin() as connection:
        connection.execute(
            text(
                f"{prefix}INSERT INTO audit_evaluation ({names}) "
                f"{_select(engine.dialect.name, first, count, day_ms)}"
            )
        )

"""The report's inputs from the rollup tables: cost grows with days and breakdown rows, not rows.

Reads only what `cds-service report refresh` wrote (never refreshes itself), and says as of
when: the refresh's time and evaluation-id high-water mark.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.models import (
    CANCELLED,
    MISSED_ALARM_DAYS,
    MODES,
    OVERRIDDEN,
    REASSURING,
    REPLACED,
)
from cds_service.audit.reports.figures import (
    DAY_MS,
    AlarmPage,
    Gathered,
    Period,
    _comparison,
    _group_row,
)
from cds_service.audit.reports.refresh import ALL, read_state
from cds_service.audit.rollup_models import (
    clinician_day,
    clinician_month,
    day_figures,
    episode_days,
    missed_alarm,
)


def _days(period: Period) -> tuple[int, int]:
    return period.start_ms // DAY_MS, period.end_ms // DAY_MS - 1


def _whole_months(period: Period) -> list[str]:
    """The months lying wholly inside the period ("YYYY-MM")."""
    months: list[str] = []
    current = date(period.first.year, period.first.month, 1)
    if current < period.first:
        current = (current + timedelta(days=32)).replace(day=1)
    while True:
        following = (current + timedelta(days=32)).replace(day=1)
        if following - timedelta(days=1) > period.last:
            return months
        months.append(current.strftime("%Y-%m"))
        current = following


def source_of(connection: Connection) -> dict[str, Any]:
    """How fresh the rollups are: the last refresh's time and evaluation-id high-water mark."""
    state = read_state(connection)
    at = state.get("refreshed_at_ms")
    return {
        "kind": "rollups",
        "refreshedAt": None
        if at is None
        else datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="seconds"),
        "evaluationsUpTo": state.get("evaluation_id"),
    }


def is_refreshed(connection: Connection) -> bool:
    """True once a refresh has completed (the rollups hold every row up to its mark); False
    also for a store not yet migrated to the rollup tables."""
    try:
        return "evaluation_id" in read_state(connection)
    except SQLAlchemyError:
        return False


def _breakdown(connection: Connection, first: int, last: int) -> list[dict[str, Any]]:
    d = day_figures.c
    keys = (d.month, d.modality, d.decision, d.response, d.override_system, d.override_code)
    query = (
        select(*keys, func.sum(d.n).label("n")).where(d.day >= first, d.day <= last).group_by(*keys)
    )
    return [dict(r._mapping) for r in connection.execute(query)]


def _looked_ahead(connection: Connection, first: int, last: int) -> tuple[dict, int, dict]:
    """(re-ordered per (month, modality), followed through, re-ordered per month)."""
    d = day_figures.c
    query = (
        select(d.month, d.modality, func.sum(d.reordered), func.sum(d.followed))
        .where(d.day >= first, d.day <= last)
        .group_by(d.month, d.modality)
    )
    reordered: dict[tuple[str, str], int] = defaultdict(int)
    by_month: dict[str, int] = defaultdict(int)
    followed = 0
    for month, modality, n, f in connection.execute(query):
        if n:
            reordered[(month, modality)] += int(n)
            by_month[month] += int(n)
        followed += int(f or 0)
    return reordered, followed, by_month


def _hedis(connection: Connection, first: int, last: int) -> dict[tuple[str, int], int]:
    """Episodes per (kind, imaged): each patient's first day with a not-indicated evaluation
    from the period's first day on, when it lies in the period."""
    c = episode_days.c
    query = (
        select(c.kind, c.imaged, func.sum(c.n))
        .where(c.day >= first, c.day <= last, or_(c.prev_day.is_(None), c.prev_day < first))
        .group_by(c.kind, c.imaged)
    )
    return {(kind, int(imaged)): int(n) for kind, imaged, n in connection.execute(query)}


def _mode_rows(connection: Connection, first: int, last: int) -> list[dict[str, Any]]:
    d = day_figures.c
    keys = (d.mode, d.decision, d.hook, d.response)
    query = (
        select(
            *keys,
            func.sum(d.n).label("n"),
            func.min(d.first_ts).label("first"),
            func.max(d.last_ts).label("last"),
        )
        .where(d.day >= first, d.day <= last)
        .group_by(*keys)
    )
    return [{**r._mapping, "n": int(r.n)} for r in connection.execute(query)]


def _watch(connection: Connection, period: Period, alarms: AlarmPage) -> dict[str, Any]:
    m = missed_alarm.c
    in_period = and_(m.ts >= period.start_ms, m.ts < period.end_ms)
    by_decision = dict.fromkeys(REASSURING, 0)
    by_mode = dict.fromkeys(MODES, 0)
    total = 0
    counts = select(m.decision, m.mode, func.count()).where(in_period).group_by(m.decision, m.mode)
    for decision, mode, n in connection.execute(counts):
        by_decision[decision] = by_decision.get(decision, 0) + n
        by_mode[mode] = by_mode.get(mode, 0) + n
        total += n
    patients = connection.execute(
        select(func.count(m.patient.distinct())).where(in_period)
    ).scalar_one()
    page = (
        select(m.item)
        .where(in_period)
        .order_by(m.ts, m.evaluation_id)
        .offset(alarms.offset)
        .limit(alarms.limit)
    )
    return {
        "windowDays": MISSED_ALARM_DAYS,
        "total": total,
        "patients": int(patients),
        "byDecision": by_decision,
        "byMode": by_mode,
        "items": [json.loads(item) for item in connection.scalars(page)],
        "offset": alarms.offset,
        "limit": alarms.limit,
    }


def _people_rows(connection: Connection, period: Period, key: str) -> list[dict[str, Any]]:
    """Per clinician or per tenant: whole months from report_clinician_month, the days of the
    partial months at the period's edges from report_clinician_day."""
    first, last = _days(period)
    months = _whole_months(period)
    names = ("evaluations", "not_indicated", "avoided", "overridden", "no_response", "reordered")
    parts = []
    m, d = clinician_month.c, clinician_day.c
    if months:
        parts.append(select(m[key].label("key"), *(m[n] for n in names)).where(m.month.in_(months)))
    edge = select(d[key].label("key"), *(d[n] for n in names)).where(d.day >= first, d.day <= last)
    if months:
        edge = edge.where(d.month.not_in(months))
    parts.append(edge)
    both = union_all(*parts).subquery("people")
    query = (
        select(both.c.key, *(func.sum(both.c[n]).label(n) for n in names))
        .group_by(both.c.key)
        .order_by(both.c.key)
    )
    return [dict(r._mapping) for r in connection.execute(query)]


def _as_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        values = {
            "key": r["key"],
            "evaluations": int(r["evaluations"]),
            "notIndicated": int(r["not_indicated"]),
            "avoided": int(r["avoided"]),
            "overridden": int(r["overridden"]),
            "noResponse": int(r["no_response"]),
        }
        out.append(_group_row(values, {r["key"]: int(r["reordered"])}))
    return out


def _month_groups(
    breakdown: list[dict[str, Any]], by_month: dict[str, int]
) -> list[dict[str, Any]]:
    months: dict[str, dict[str, Any]] = {}
    for row in breakdown:
        v = months.setdefault(
            row["month"],
            {
                "key": row["month"],
                "evaluations": 0,
                "notIndicated": 0,
                "avoided": 0,
                "overridden": 0,
                "noResponse": 0,
            },
        )
        n = int(row["n"])
        v["evaluations"] += n
        if row["decision"] != "not-indicated":
            continue
        v["notIndicated"] += n
        v["avoided"] += n if row["response"] in (CANCELLED, REPLACED) else 0
        v["overridden"] += n if row["response"] == OVERRIDDEN else 0
        v["noResponse"] += n if row["response"] is None else 0
    return [_group_row(months[k], by_month) for k in sorted(months)]


def gather_rollups(
    connection: Connection,
    period: Period,
    by: str | None,
    step: Callable[[str], None],
    alarms: AlarmPage,
) -> Gathered:
    """The report's inputs from the rollups, in the shapes gather_raw gives."""
    first, last = _days(period)
    source = source_of(connection)
    step("orders by month, modality, decision and response")
    breakdown = [{**r, "n": int(r["n"])} for r in _breakdown(connection, first, last)]
    step("re-orders and urgent follow-through")
    reordered, followed, by_month = _looked_ahead(connection, first, last)
    step("28-day measure")
    counts = _hedis(connection, first, last)

    def episodes(kind: str) -> int:
        return counts.get((kind, 0), 0) + counts.get((kind, 1), 0)

    hedis = {"episodes": episodes(ALL), "imaged": counts.get((ALL, 1), 0)}
    step("silent pilot and live compared")
    comparison = _comparison(
        _mode_rows(connection, first, last),
        {mode: episodes(mode) for mode in MODES},
        {mode: counts.get((mode, 1), 0) for mode in MODES},
    )
    step("missed-alarm watch")
    watch = _watch(connection, period, alarms)
    step("per clinician")
    clinicians = _as_groups(_people_rows(connection, period, "clinician"))
    groups = None
    if by == "clinician":
        groups = clinicians
    elif by == "organisation":
        step("per organisation")
        groups = _as_groups(_people_rows(connection, period, "tenant"))
    elif by == "month":
        step("per month")
        groups = _month_groups(breakdown, by_month)
    return Gathered(
        breakdown, reordered, followed, hedis, comparison, watch, clinicians, groups, source
    )

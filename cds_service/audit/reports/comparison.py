"""The period against the one before it: in total, per month and per organisation, with change.

The previous period has as many days as the selected one and ends the day before it starts.
The selected period's own figures come from the report; the previous one's are two grouped
counts over covering indexes (per organisation over both periods, per month over the previous
one), so the comparison costs one more scan of the period, not a second report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from cds_service.audit.models import CANCELLED, REPLACED, evaluation
from cds_service.audit.reports.figures import Period

FIGURES = ("evaluations", "notIndicated", "notIndicatedShare", "avoided", "avoidedShare")


def previous_period(period: Period) -> Period | None:
    """The period of as many days ending the day before `period` starts (cut at the first day
    of the calendar), or None when `period` starts on that first day."""
    if period.first == date.min:
        return None
    days = (period.last - period.first).days + 1
    start = period.first - timedelta(days=min(days, (period.first - date.min).days))
    return Period(start, period.first - timedelta(days=1))


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def figures_of(evaluations: int, not_indicated: int, avoided: int) -> dict[str, Any]:
    """The compared figures from three counts."""
    return {
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedShare": _rate(not_indicated, evaluations),
        "avoided": avoided,
        "avoidedShare": _rate(avoided, not_indicated),
    }


def change(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Current − previous per figure (shares in fractions, so 0.05 is 5 percentage points);
    None throughout when there is nothing to compare with (no evaluations before)."""
    if previous is None or not previous["evaluations"]:
        return dict.fromkeys(FIGURES)
    delta: dict[str, Any] = {}
    for name in FIGURES:
        now, before = current[name], previous[name]
        if now is None or before is None:
            delta[name] = None
        elif name.endswith("Share"):
            delta[name] = round(now - before, 4)
        else:
            delta[name] = now - before
    return delta


def _counts(e: Any) -> tuple[Any, Any, Any]:
    not_indicated = e.c.decision == "not-indicated"
    avoided = and_(not_indicated, e.c.response.in_((CANCELLED, REPLACED)))
    return (
        func.count().label("evaluations"),
        func.sum(case((not_indicated, 1), else_=0)).label("notIndicated"),
        func.sum(case((avoided, 1), else_=0)).label("avoided"),
    )


def _organisation_query(previous: Period, period: Period) -> Any:
    e = evaluation.alias("e")
    side = case((e.c.ts >= period.start_ms, "current"), else_="previous").label("side")
    return (
        select(e.c.tenant.label("key"), side, *_counts(e))
        .where(e.c.ts >= previous.start_ms, e.c.ts < period.end_ms)
        .group_by(e.c.tenant, side)
    )


def _month_query(previous: Period) -> Any:
    e = evaluation.alias("e")
    return (
        select(e.c.month.label("month"), *_counts(e))
        .where(e.c.ts >= previous.start_ms, e.c.ts < previous.end_ms)
        .group_by(e.c.month)
    )


def _of_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    return figures_of(int(row["evaluations"]), int(row["notIndicated"] or 0), int(row["avoided"]))


def _month_before(key: str) -> str:
    year, month = (int(part) for part in key.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _add(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    if a is None:
        return dict(b)
    return figures_of(
        a["evaluations"] + b["evaluations"],
        a["notIndicated"] + b["notIndicated"],
        a["avoided"] + b["avoided"],
    )


def compare_periods(
    connection: Connection, period: Period, report: Mapping[str, Any]
) -> dict[str, Any]:
    """The `versusPrevious` part of the report (`report`: the selected period's figures)."""
    previous = previous_period(period)
    sides: dict[str, dict[str, dict[str, Any]]] = {"current": {}, "previous": {}}
    # A period from the calendar's first day has no period before: an empty one stands in.
    bounds = previous or period
    for row in connection.execute(_organisation_query(bounds, period)):
        values = row._mapping
        sides[values["side"]][values["key"]] = _of_row(values)
    totals: dict[str, dict[str, Any]] = {}
    for side, groups in sides.items():
        totals[side] = figures_of(
            sum(g["evaluations"] for g in groups.values()),
            sum(g["notIndicated"] for g in groups.values()),
            sum(g["avoided"] for g in groups.values()),
        )
    months: dict[str, dict[str, Any]] = {}
    for row in connection.execute(_month_query(previous)) if previous else ():
        months[row._mapping["month"]] = _of_row(row._mapping)
    current_months = []
    for month in report["monthly"]:
        figures = figures_of(month["evaluations"], month["notIndicated"], month["avoided"])
        # A month cut by the period's first day has days on both sides: it counts as one.
        months[month["month"]] = _add(months.get(month["month"]), figures)
        current_months.append((month["month"], figures))
    by_month = [
        {"month": key, **figures, "change": change(figures, months.get(_month_before(key)))}
        for key, figures in current_months
    ]
    by_organisation: list[dict[str, Any]] = [
        {
            "key": key,
            "current": sides["current"].get(key, figures_of(0, 0, 0)),
            "previous": sides["previous"].get(key, figures_of(0, 0, 0)),
        }
        for key in sorted(set(sides["current"]) | set(sides["previous"]))
    ]
    for group in by_organisation:
        group["change"] = change(group["current"], group["previous"])
    return {
        "previousPeriod": None
        if previous is None
        else {"from": previous.first.isoformat(), "to": previous.last.isoformat()},
        "current": totals["current"],
        "previous": totals["previous"],
        "change": change(totals["current"], totals["previous"]),
        "byMonth": by_month,
        "byOrganisation": by_organisation,
    }

"""The avoided-scans figures, computed as SQL aggregates in the database (SQLite or PostgreSQL).

Every figure is defined in DEFINITIONS, and the report prints those definitions next to the
numbers. The queries scan the period once per table of the report and look ahead per avoided
(or urgent) order through the (patient, ts) index, so they grow with the database, not with
the service's memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, exists, func, or_, select, text
from sqlalchemy.sql.elements import ColumnElement

from cds_service.audit.models import (
    CANCELLED,
    LIVE,
    MISSED_ALARM_DAYS,
    MODES,
    OVERRIDDEN,
    REASSURING,
    REPLACED,
    SHADOW,
    URGENT,
    evaluation,
)

DAY_MS = 86_400_000
REORDER_DAYS = 42
HEDIS_DAYS = 28
URGENT_FOLLOW_UP_HOURS = 24
DECISIONS = ("urgent", "indicated", "not-indicated", "insufficient-data", "out-of-population")
MODALITIES = ("xray", "ct", "mri")
GROUPINGS = ("month", "clinician", "organisation")

DEFINITIONS = {
    "evaluation": "One lumbar imaging order (X-ray, CT or MRI) judged in one hook call. An order "
    "judged at order-select and again at order-sign counts twice. The period covers "
    "evaluations from the first day 00:00 UTC up to the end of the last day.",
    "not-indicated": "Evaluations whose decision was not-indicated (no imaging indication found "
    "although the data to judge it was there).",
    "cancelled": "Not-indicated evaluations whose card's latest feedback accepted a suggestion "
    "that only deletes the draft order.",
    "replaced": "Not-indicated evaluations whose card's latest feedback accepted a suggestion "
    "that deletes the draft order and creates an alternative (physiotherapy referral).",
    "scans avoided": "cancelled + replaced.",
    "accepted other": "Not-indicated evaluations whose latest feedback accepted a suggestion "
    "that neither cancels nor replaces the order.",
    "overridden": "Not-indicated evaluations whose latest feedback was overridden, counted "
    "per override reason (system and code; no reason given counts as 'none').",
    "no response": "Not-indicated evaluations without any feedback.",
    "signed lumbar imaging order": "An order-sign evaluation of a lumbar imaging order whose "
    "card was not cancelled or replaced (no feedback, overridden, or another suggestion "
    "accepted), whatever its decision.",
    "re-ordered": f"Scans avoided followed by a signed lumbar imaging order for the same "
    f"(pseudonymous) patient later and at most {REORDER_DAYS} days after the avoided "
    "evaluation, looked for in the whole audit store (also after the period).",
    "net avoided": "scans avoided − re-ordered.",
    "28-day measure": f"In the spirit of HEDIS LBP. Episodes: patients with at least one "
    f"not-indicated evaluation in the period, indexed at their first one. Without imaging: "
    f"episodes with no signed lumbar imaging order from the index moment up to {HEDIS_DAYS} "
    f"days later (the index evaluation itself counts when it is a signed order). Rate: "
    f"without imaging / episodes; higher is better.",
    "urgent follow-through": f"Urgent evaluations followed by a signed lumbar imaging order "
    f"for the same patient within {URGENT_FOLLOW_UP_HOURS} hours (the urgent evaluation "
    f"itself counts when it is a signed order).",
    "cost and radiation avoided": "net avoided per modality × the configured tariff "
    "(CDS_TARIFFS) and effective dose per examination (CDS_DOSE_MSV).",
    "clinician": "The keyed pseudonym of the ordering user (context.userId); the report never "
    "holds names.",
    "organisation": "The tenant recorded with the evaluation (CDS_TENANT or the JWT tenant).",
    "mode": "The service's CDS_MODE when the evaluation was made: live (cards and ratings "
    "returned to the EHR) or shadow (silent pilot: judged and audited, nothing shown). The "
    "figures above count both modes.",
    "shadow and live compared": "The figures split by mode: each mode's first and last day "
    "with evaluations in the period, evaluations, not indicated and its share, not-indicated "
    "cards cancelled or replaced, signed lumbar imaging orders (also per day), and the 28-day "
    "measure with episodes indexed at each patient's first not-indicated evaluation in that "
    "mode (the look-ahead for a signed order reads every mode).",
    "missed-alarm watch": f"Every not-indicated or insufficient-data evaluation in the period "
    f"followed, later and at most {MISSED_ALARM_DAYS} days after it, by an urgent evaluation "
    f"for the same (pseudonymous) patient, looked for in the whole audit store (also after "
    f"the period): listed with the first such urgent evaluation, both rule-set versions and "
    f"modes, and the criteria met at each (criterion:reason codes where stored), for "
    f"clinical review.",
}


@dataclass(frozen=True, slots=True)
class Period:
    """From the first day 00:00 UTC to the day after the last day 00:00 UTC."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError("the period ends before it starts")
        if self.last >= date.max:
            # The period runs to the day after the last: 9999-12-31 has none in Python's calendar.
            raise ValueError(f"the last day must be before {date.max.isoformat()}")

    @property
    def start_ms(self) -> int:
        return int(datetime.combine(self.first, time(), UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        end = datetime.combine(self.last + timedelta(days=1), time(), UTC)
        return int(end.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Costs:
    """Tariff and effective dose per modality, from the settings."""

    tariffs: Mapping[str, float]
    dose_msv: Mapping[str, float]
    currency: str


def _signed_later(e: Any, window_ms: int, *, include_self: bool) -> ColumnElement[bool]:
    """EXISTS a signed lumbar imaging order for e's patient within [e.ts, e.ts + window]."""
    s = evaluation.alias("s")
    conditions = [
        s.c.patient == e.c.patient,
        s.c.ts >= e.c.ts,
        s.c.ts <= e.c.ts + window_ms,
        s.c.hook == "order-sign",
        or_(s.c.response.is_(None), s.c.response.not_in((CANCELLED, REPLACED))),
    ]
    if not include_self:
        conditions.append(s.c.id != e.c.id)
    return exists().where(and_(*conditions))


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _group_key(e: Any, by: str) -> Any:
    return {"month": e.c.month, "clinician": e.c.clinician, "organisation": e.c.tenant}[by]


def _in_period(e: Any, period: Period, scan: bool) -> ColumnElement[bool]:
    # On SQLite, "ts + 0" keeps the planner off the ts index: for a period covering much of
    # the table, scanning a covering index in group order beats a range lookup and a sort.
    ts = e.c.ts + 0 if scan else e.c.ts
    return and_(ts >= period.start_ms, ts < period.end_ms)


def _avoided(e: Any) -> ColumnElement[bool]:
    return and_(e.c.decision == "not-indicated", e.c.response.in_((CANCELLED, REPLACED)))


def _breakdown_query(period: Period, scan: bool) -> Any:
    e = evaluation.alias("e")
    keys = (
        e.c.month,
        e.c.modality,
        e.c.decision,
        e.c.response,
        e.c.override_system,
        e.c.override_code,
    )
    return select(*keys, func.count().label("n")).where(_in_period(e, period, scan)).group_by(*keys)


# The look-aheads are separate queries with EXISTS in the WHERE clause, so that PostgreSQL
# runs them as hash semi-joins rather than one index probe per row.
def _reordered_query(period: Period, scan: bool) -> Any:
    """Scans avoided that were re-ordered, per month, modality, clinician and organisation
    (one semi-join, summed in Python for each table of the report)."""
    e = evaluation.alias("e")
    keys = (e.c.month, e.c.modality, e.c.clinician, e.c.tenant)
    return (
        select(*keys, func.count().label("n"))
        .where(
            _in_period(e, period, scan),
            _avoided(e),
            _signed_later(e, REORDER_DAYS * DAY_MS, include_self=False),
        )
        .group_by(*keys)
    )


def _followed_query(period: Period, scan: bool) -> Any:
    """Urgent evaluations followed through."""
    e = evaluation.alias("e")
    return select(func.count()).where(
        _in_period(e, period, scan),
        e.c.decision == "urgent",
        _signed_later(e, URGENT_FOLLOW_UP_HOURS * 3_600_000, include_self=True),
    )


def _group_query(period: Period, by: str, scan: bool) -> Any:
    e = evaluation.alias("e")
    key = _group_key(e, by).label("key")
    not_indicated = e.c.decision == "not-indicated"
    return (
        select(
            key,
            func.count().label("evaluations"),
            _count_if(not_indicated).label("notIndicated"),
            _count_if(_avoided(e)).label("avoided"),
            _count_if(and_(not_indicated, e.c.response == OVERRIDDEN)).label("overridden"),
            _count_if(and_(not_indicated, e.c.response.is_(None))).label("noResponse"),
        )
        .where(_in_period(e, period, scan))
        .group_by(key)
        .order_by(key)
    )


def _hedis_queries(period: Period, scan: bool) -> tuple[Any, Any]:
    """(episodes, episodes imaged within the window): two counts, EXISTS kept in WHERE."""
    e = evaluation.alias("e")
    index = (
        select(e.c.patient.label("patient"), func.min(e.c.ts).label("ts"))
        .where(_in_period(e, period, scan), e.c.decision == "not-indicated")
        .group_by(e.c.patient)
        .subquery("episode")
    )
    s = evaluation.alias("s")
    imaged = exists().where(
        s.c.patient == index.c.patient,
        s.c.ts >= index.c.ts,
        s.c.ts <= index.c.ts + HEDIS_DAYS * DAY_MS,
        s.c.hook == "order-sign",
        or_(s.c.response.is_(None), s.c.response.not_in((CANCELLED, REPLACED))),
    )
    count = select(func.count()).select_from(index)
    return count, count.where(imaged)


def _mode_query(period: Period, scan: bool) -> Any:
    """Counts by mode, decision, hook and response, with each group's first and last moment."""
    e = evaluation.alias("e")
    keys = (e.c.mode, e.c.decision, e.c.hook, e.c.response)
    return (
        select(
            *keys,
            func.count().label("n"),
            func.min(e.c.ts).label("first"),
            func.max(e.c.ts).label("last"),
        )
        .where(_in_period(e, period, scan))
        .group_by(*keys)
    )


def _hedis_by_mode_queries(period: Period, scan: bool) -> tuple[Any, Any]:
    """(episodes, imaged) per mode: the 28-day measure with episodes indexed per mode."""
    e = evaluation.alias("e")
    index = (
        select(e.c.mode.label("mode"), e.c.patient.label("patient"), func.min(e.c.ts).label("ts"))
        .where(_in_period(e, period, scan), e.c.decision == "not-indicated")
        .group_by(e.c.patient, e.c.mode)
        .subquery("episode")
    )
    s = evaluation.alias("s")
    imaged = exists().where(
        s.c.patient == index.c.patient,
        s.c.ts >= index.c.ts,
        s.c.ts <= index.c.ts + HEDIS_DAYS * DAY_MS,
        s.c.hook == "order-sign",
        or_(s.c.response.is_(None), s.c.response.not_in((CANCELLED, REPLACED))),
    )
    # Summed per mode rather than grouped: the episodes come in patient order, and a GROUP BY
    # mode would sort them all again.
    count = select(*(_count_if(index.c.mode == mode).label(mode) for mode in MODES))
    return count, count.where(imaged)


def _missed_alarm_query(period: Period) -> Any:
    """Pairs (reassuring evaluation in the period, urgent one within the window after it).

    Driven by the urgent evaluations (a few percent of rows), gathered once: each then looks up
    its patient's reassuring ones through the (decision, patient, ts) index. MATERIALIZED and
    the "ts + 0" keep SQLite's planner from driving the join by every row of the period through
    the ts index instead (9 s rather than 0.4 s over 1,000,000 rows).
    """
    window = MISSED_ALARM_DAYS * DAY_MS
    r = evaluation.alias("r")
    u = (
        select(*(r.c[name] for name in _WATCH_COLUMNS))
        .where(
            r.c.decision == URGENT,
            r.c.ts + 0 > period.start_ms,
            r.c.ts + 0 < period.end_ms + window,
        )
        .cte("urgent")
        .prefix_with("MATERIALIZED")
    )
    e = evaluation.alias("e")
    earlier = (e.c[name].label(f"e_{name}") for name in _WATCH_COLUMNS)
    later = (u.c[name].label(f"u_{name}") for name in _WATCH_COLUMNS if name != "patient")
    return (
        select(*earlier, *later)
        .select_from(
            u.join(
                e,
                and_(
                    e.c.patient == u.c.patient,
                    e.c.decision.in_(REASSURING),
                    e.c.ts < u.c.ts,
                    e.c.ts >= u.c.ts - window,
                ),
            )
        )
        .where(e.c.ts + 0 >= period.start_ms, e.c.ts + 0 < period.end_ms)
        .order_by(e.c.ts, e.c.id, u.c.ts, u.c.id)
    )


_WATCH_COLUMNS = (
    "id",
    "ts",
    "patient",
    "decision",
    "hook",
    "modality",
    "mode",
    "policy_version",
    "criteria_met",
    "reasons_met",
    "consult_id",
)


def _watch_side(row: Mapping[Any, Any], side: str) -> dict[str, Any]:
    def get(name: str) -> Any:
        return row[f"{side}_{name}"]

    # The reasons ("red-flag:cauda-equina") say which pattern fired; rows stored before
    # migration 0005 have only the criterion ids.
    codes = get("reasons_met") or get("criteria_met") or ""
    return {
        "at": datetime.fromtimestamp(get("ts") / 1000, UTC).isoformat(timespec="minutes"),
        "decision": get("decision"),
        "hook": get("hook"),
        "modality": get("modality"),
        "mode": get("mode"),
        "policyVersion": get("policy_version"),
        "criteria": [c for c in codes.split(",") if c],
        "consultId": get("consult_id"),
    }


def watch_item(values: Mapping[Any, Any]) -> dict[str, Any]:
    """One listed pair of the watch, from the e_* (reassuring) and u_* (urgent) columns."""
    return {
        "key": values["e_consult_id"],
        "patient": values["e_patient"],
        "daysLater": round((values["u_ts"] - values["e_ts"]) / DAY_MS, 1),
        "earlier": _watch_side(values, "e"),
        "urgent": _watch_side(values, "u"),
    }


def missed_alarms(connection: Connection, period: Period) -> dict[str, Any]:
    """The missed-alarm watch of a period: counts and the pseudonymous list for review
    (`connection` from report_connection, for the report's statement timeout)."""
    items: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for row in connection.execute(_missed_alarm_query(period)):
        values = row._mapping
        if values["e_id"] in seen:
            continue  # a later urgent evaluation of the same patient: the first one is listed
        seen.add(values["e_id"])
        items.append(watch_item(values))
    by_decision = dict.fromkeys(REASSURING, 0)
    by_mode = dict.fromkeys(MODES, 0)
    for item in items:
        by_decision[item["earlier"]["decision"]] += 1
        by_mode[item["earlier"]["mode"]] = by_mode.get(item["earlier"]["mode"], 0) + 1
    return {
        "windowDays": MISSED_ALARM_DAYS,
        "total": len(items),
        "patients": len({item["patient"] for item in items}),
        "byDecision": by_decision,
        "byMode": by_mode,
        "items": items,
    }


def _date_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _day(ms: int | None) -> str | None:
    return None if ms is None else _date_of(ms).isoformat()


def _comparison(
    rows: Sequence[Mapping[str, Any]],
    episodes: Mapping[str, int | None],
    imaged: Mapping[str, int | None],
) -> dict[str, Any]:
    """The shadow and live figures side by side, each mode naming its own days."""
    modes: dict[str, dict[str, Any]] = {}
    for mode in (SHADOW, LIVE):
        mine = [r for r in rows if r["mode"] == mode]
        first = min((r["first"] for r in mine), default=None)
        last = max((r["last"] for r in mine), default=None)
        days = 0
        if first is not None and last is not None:
            days = (_date_of(last) - _date_of(first)).days + 1
        evaluations = sum(r["n"] for r in mine)
        not_indicated = [r for r in mine if r["decision"] == "not-indicated"]
        signed = sum(
            r["n"]
            for r in mine
            if r["hook"] == "order-sign" and r["response"] not in (CANCELLED, REPLACED)
        )
        cancelled = sum(r["n"] for r in not_indicated if r["response"] == CANCELLED)
        replaced = sum(r["n"] for r in not_indicated if r["response"] == REPLACED)
        count = sum(r["n"] for r in not_indicated)
        n_episodes = int(episodes.get(mode) or 0)  # SUM over no row is NULL
        without = n_episodes - int(imaged.get(mode) or 0)
        modes[mode] = {
            "cards": "not shown (silent pilot)" if mode == SHADOW else "shown",
            "from": _day(first),
            "to": _day(last),
            "days": days,
            "evaluations": evaluations,
            "notIndicated": count,
            "notIndicatedShare": _rate(count, evaluations),
            "cancelled": cancelled,
            "replaced": replaced,
            "avoided": cancelled + replaced,
            "signedOrders": signed,
            "signedOrdersPerDay": round(signed / days, 2) if days else None,
            "measure28": {
                "episodes": n_episodes,
                "withoutImaging": without,
                "rate": _rate(without, n_episodes),
            },
        }
    return {"bothModes": all(modes[m]["evaluations"] for m in MODES), **modes}


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _group_row(row: Mapping[str, Any], reordered_by_key: Mapping[Any, int]) -> dict[str, Any]:
    avoided = int(row["avoided"] or 0)
    reordered = reordered_by_key.get(row["key"], 0)
    evaluations = int(row["evaluations"])
    not_indicated = int(row["notIndicated"] or 0)
    return {
        "key": row["key"],
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedRate": _rate(not_indicated, evaluations),
        "avoided": avoided,
        "netAvoided": avoided - reordered,
        "overridden": int(row["overridden"] or 0),
        "noResponse": int(row["noResponse"] or 0),
    }


@contextmanager
def report_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for the report's reads, with the report's own PostgreSQL settings."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # Report-sized aggregates: JIT compilation costs more than it saves here, and the
            # 28-day measure's sort should stay in memory. Both reset at the end of the read.
            connection.execute(text("SET LOCAL jit = off"))
            connection.execute(text("SET LOCAL work_mem = '64MB'"))
            # The hook path's statement timeout (CDS_DATABASE_STATEMENT_TIMEOUT_MS) is for
            # single-row writes; a report over a year of rows gets a bound of its own.
            connection.execute(text("SET LOCAL statement_timeout = '120s'"))
        yield connection


SOURCES = ("rollups", "raw")
ALARMS_SHOWN = 100  # missed-alarm pairs listed per page of the report


@dataclass(frozen=True, slots=True)
class AlarmPage:
    """Which missed-alarm pairs the report lists: `limit` of them from `offset` (in ts order)."""

    offset: int = 0
    limit: int = ALARMS_SHOWN

    def __post_init__(self) -> None:
        if self.offset < 0 or self.limit < 0:
            raise ValueError("the missed-alarm offset and limit must not be negative")


FIRST_PAGE = AlarmPage()


@dataclass(slots=True)
class Gathered:
    """What the report reads from the database, from the raw rows or from the rollups."""

    breakdown: list[dict[str, Any]]
    reordered: dict[tuple[str, str], int]
    followed: int
    hedis: dict[str, Any]
    comparison: dict[str, Any]
    watch: dict[str, Any]
    clinicians: list[dict[str, Any]]
    groups: list[dict[str, Any]] | None
    source: dict[str, Any]


def compute_report(
    engine: Engine,
    period: Period,
    costs: Costs,
    *,
    by: str | None = None,
    step: Callable[[str], None] = lambda _: None,
    source: str = "raw",
    alarms: AlarmPage = FIRST_PAGE,
) -> dict[str, Any]:
    """All figures of the avoided-scans report for a period, as a JSON-ready dict.

    `source` "raw" reads the evaluations, "rollups" the tables `cds-service report refresh`
    keeps (the same figures, as of the refresh). `step` is called before each query (the CLI
    draws a progress bar with it).
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    if source == "rollups":
        from cds_service.audit.reports.rollups import gather_rollups as gather
    else:
        gather = gather_raw
    with report_connection(engine) as connection:
        gathered = gather(connection, period, by, step, alarms)
    step("figures")
    report = _assemble(
        gathered.breakdown,
        gathered.reordered,
        gathered.followed,
        gathered.hedis,
        gathered.clinicians,
        costs,
        period,
    )
    report["comparison"] = gathered.comparison
    report["missedAlarms"] = gathered.watch
    report["by"] = by
    if gathered.groups is not None:
        report["groups"] = gathered.groups
    report["source"] = gathered.source
    return report


def page_of(watch: dict[str, Any], alarms: AlarmPage) -> dict[str, Any]:
    """The watch with only the listed page of its items, and the page's offset and limit."""
    items = watch["items"][alarms.offset : alarms.offset + alarms.limit]
    return {**watch, "offset": alarms.offset, "limit": alarms.limit, "items": items}


def gather_raw(
    connection: Connection,
    period: Period,
    by: str | None,
    step: Callable[[str], None],
    alarms: AlarmPage,
) -> Gathered:
    """The report's inputs from the evaluation rows (the check on the rollups)."""
    scan = connection.dialect.name == "sqlite"
    step("orders by month, modality, decision and response")
    query = _breakdown_query(period, scan)
    breakdown = [dict(r._mapping) for r in connection.execute(query)]
    step("re-orders and urgent follow-through")
    reordered_rows = list(connection.execute(_reordered_query(period, scan)))
    reordered: dict[tuple[str, str], int] = defaultdict(int)
    reordered_by: dict[str, dict[str, int]] = {g: defaultdict(int) for g in GROUPINGS}
    for row in reordered_rows:
        reordered[(row.month, row.modality)] += row.n
        reordered_by["month"][row.month] += row.n
        reordered_by["clinician"][row.clinician] += row.n
        reordered_by["organisation"][row.tenant] += row.n
    followed = int(connection.execute(_followed_query(period, scan)).scalar_one())
    step("28-day measure")
    episodes, imaged = _hedis_queries(period, scan)
    hedis = {
        "episodes": connection.execute(episodes).scalar_one(),
        "imaged": connection.execute(imaged).scalar_one(),
    }
    step("silent pilot and live compared")
    by_mode = [dict(r._mapping) for r in connection.execute(_mode_query(period, scan))]
    mode_episodes, mode_imaged = _hedis_by_mode_queries(period, scan)
    comparison = _comparison(
        by_mode,
        dict(connection.execute(mode_episodes).one()._mapping),
        dict(connection.execute(mode_imaged).one()._mapping),
    )
    step("missed-alarm watch")
    watch = page_of(missed_alarms(connection, period), alarms)
    step("per clinician")
    clinicians = _groups(connection, period, scan, "clinician", reordered_by["clinician"])
    groups = None
    if by == "clinician":
        groups = clinicians
    elif by is not None:
        step(f"per {by}")
        groups = _groups(connection, period, scan, by, reordered_by[by])
    return Gathered(
        breakdown,
        reordered,
        followed,
        hedis,
        comparison,
        watch,
        clinicians,
        groups,
        dict(RAW_SOURCE),
    )


RAW_SOURCE = {"kind": "raw", "refreshedAt": None, "evaluationsUpTo": None}


def _groups(
    connection: Any, period: Period, scan: bool, by: str, reordered: Mapping[str, int]
) -> list[dict[str, Any]]:
    rows = connection.execute(_group_query(period, by, scan))
    return [_group_row(r._mapping, reordered) for r in rows]


def _assemble(
    breakdown: list[dict[str, Any]],
    reordered_by: Mapping[tuple[str, str], int],
    followed: int,
    hedis: dict[str, Any],
    clinicians: list[dict[str, Any]],
    costs: Costs,
    period: Period,
) -> dict[str, Any]:
    matrix = {m: dict.fromkeys(DECISIONS, 0) for m in MODALITIES}
    responses: dict[str, int] = defaultdict(int)
    reasons: dict[tuple[str, str], int] = defaultdict(int)
    avoided_by_modality = dict.fromkeys(MODALITIES, 0)
    reordered_by_modality = dict.fromkeys(MODALITIES, 0)
    urgent: dict[str, int] = defaultdict(int)
    months: dict[str, dict[str, int]] = {}
    for row in breakdown:
        n, modality, decision, response = (
            row["n"],
            row["modality"],
            row["decision"],
            row["response"],
        )
        matrix.setdefault(modality, dict.fromkeys(DECISIONS, 0))
        matrix[modality][decision] = matrix[modality].get(decision, 0) + n
        month = months.setdefault(
            row["month"], {"evaluations": 0, "notIndicated": 0, "avoided": 0, "reordered": 0}
        )
        month["evaluations"] += n
        if decision == "urgent":
            urgent["total"] += n
            urgent[response or "none"] += n
        if decision != "not-indicated":
            continue
        month["notIndicated"] += n
        responses[response or "none"] += n
        if response == OVERRIDDEN:
            reasons[(row["override_system"] or "", row["override_code"] or "none")] += n
        if response in (CANCELLED, REPLACED):
            avoided_by_modality[modality] = avoided_by_modality.get(modality, 0) + n
            month["avoided"] += n
    for (month_key, modality), n in reordered_by.items():
        reordered_by_modality[modality] = reordered_by_modality.get(modality, 0) + n
        months[month_key]["reordered"] += n
    urgent["followedThrough"] = followed

    by_modality = {
        m: {**counts, "total": sum(counts.values())} for m, counts in sorted(matrix.items())
    }
    by_decision = {d: sum(matrix[m].get(d, 0) for m in matrix) for d in DECISIONS}
    avoided = responses[CANCELLED] + responses[REPLACED]
    reordered = sum(reordered_by_modality.values())
    resources = {}
    for modality in MODALITIES:
        net = avoided_by_modality.get(modality, 0) - reordered_by_modality.get(modality, 0)
        resources[modality] = {
            "netAvoided": net,
            "tariff": costs.tariffs[modality],
            "cost": round(net * costs.tariffs[modality], 2),
            "mSvPerExam": costs.dose_msv[modality],
            "mSv": round(net * costs.dose_msv[modality], 3),
        }
    episodes = int(hedis["episodes"] or 0)
    without = episodes - int(hedis["imaged"] or 0)
    return {
        "report": "avoided-scans",
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "definitions": DEFINITIONS,
        "evaluations": {
            "total": sum(by_decision.values()),
            "byDecision": by_decision,
            "byModality": by_modality,
        },
        "notIndicated": {
            "total": by_decision["not-indicated"],
            "cancelled": responses[CANCELLED],
            "replaced": responses[REPLACED],
            "avoided": avoided,
            "reordered": reordered,
            "netAvoided": avoided - reordered,
            "acceptedOther": responses["accepted"],
            "overridden": responses[OVERRIDDEN],
            "noResponse": responses["none"],
            "overrideReasons": [
                {"system": system, "code": code, "count": count}
                for (system, code), count in sorted(reasons.items(), key=lambda i: (-i[1], i[0]))
            ],
        },
        "measure28": {
            "episodes": episodes,
            "withoutImaging": without,
            "rate": _rate(without, episodes),
        },
        "urgent": {
            "total": urgent["total"],
            "followedThrough": urgent["followedThrough"],
            "followThroughRate": _rate(urgent["followedThrough"], urgent["total"]),
            "accepted": urgent[CANCELLED] + urgent[REPLACED] + urgent["accepted"],
            "overridden": urgent[OVERRIDDEN],
            "noResponse": urgent["none"],
        },
        "resources": {
            "currency": costs.currency,
            "byModality": resources,
            "cost": round(sum(r["cost"] for r in resources.values()), 2),
            "mSv": round(sum(r["mSv"] for r in resources.values()), 3),
        },
        "monthly": [
            {
                "month": month,
                "evaluations": v["evaluations"],
                "notIndicated": v["notIndicated"],
                "avoided": v["avoided"],
                "netAvoided": v["avoided"] - v["reordered"],
            }
            for month, v in sorted(months.items())
        ],
        "clinicians": clinicians,
    }

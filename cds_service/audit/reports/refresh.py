"""`cds-service report refresh`: brings the rollup tables up to date with audit_evaluation.

Idempotent and incremental. New evaluations are those above the id high-water mark (on
PostgreSQL also ids that were missing below it: a transaction still open when the mark was
set); updated and deleted ones come from report_change (triggers of migration 0007). For each
changed (patient, ts) the refresh recomputes, from the raw rows:

- its day, and the days of the patient's avoided and urgent evaluations up to 42 days before
  it (their re-order and follow-through look-aheads may have changed): report_day and
  report_clinician_day, then the months of those days (report_clinician_month);
- the patient: their 28-day episode rows and missed-alarm pairs (report_episode,
  report_missed_alarm), then the days of report_episode_day whose episode rows changed.

Every write is a short transaction of at most `write_batch` rows, so that on SQLite (one writer
at a time) a hook call waits for the refresh far less than its busy timeout; on PostgreSQL the
refresh writes only rollup rows and so never waits for, or holds up, a hook call.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text

from cds_service.audit.models import (
    CANCELLED,
    MISSED_ALARM_DAYS,
    OVERRIDDEN,
    REASSURING,
    REPLACED,
    URGENT,
    evaluation,
)
from cds_service.audit.reports.figures import (
    DAY_MS,
    HEDIS_DAYS,
    REORDER_DAYS,
    URGENT_FOLLOW_UP_HOURS,
    _avoided,
    _count_if,
    _signed_later,
    watch_item,
)
from cds_service.audit.rollup_models import (
    change,
    clinician_day,
    clinician_month,
    day_figures,
    episode,
    episode_days,
    missed_alarm,
    refresh_gap,
    refresh_state,
)

# An avoided evaluation's re-order look-ahead is the longest window that reaches back from a
# changed row (the urgent follow-through's 24 hours lie inside it).
LOOK_BACK_MS = max(REORDER_DAYS * DAY_MS, URGENT_FOLLOW_UP_HOURS * 3_600_000)
WRITE_BATCH = 1000
PATIENT_BATCH = 500
ID_BATCH = 50_000
# A missing id older than this is a rolled-back insert, not a transaction still open: every
# hook transaction ends within the statement timeout (seconds).
GAP_SETTLE_MS = 10 * 60_000
RECENT_IDS = 10_000  # a full refresh checks this many ids below its mark for open transactions
ALL = "all"  # the 28-day measure over every mode; the per-mode rows use the mode's name
_ADVISORY_LOCK = 0x15_0007
# Advisory locks are per database: the schema in the key keeps stores in other schemas of the
# same database (sites, test runs) from holding up each other's refresh.
_LOCK_KEYS = f"{_ADVISORY_LOCK}, hashtext(current_schema())"


class RefreshRunning(RuntimeError):
    """Another refresh holds the lock (PostgreSQL): this one did nothing."""


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one refresh did."""

    full: bool
    new_rows: int
    changed_rows: int
    days: int
    months: int
    patients: int
    evaluation_id: int
    seconds: float


def day_of(ts: int) -> int:
    """The UTC day number (days since 1970-01-01) of an epoch-milliseconds moment."""
    return ts // DAY_MS


def _month_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m")


def _days_of_month(month: str) -> tuple[int, int]:
    """First and last day number of a "YYYY-MM" month."""
    year, number = (int(part) for part in month.split("-"))
    first = datetime(year, number, 1, tzinfo=UTC)
    following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return day_of(int(first.timestamp() * 1000)), day_of(int(following.timestamp() * 1000)) - 1


def read_state(connection: Connection) -> dict[str, int]:
    """The refresh's high-water marks; empty before the first refresh."""
    return {name: value for name, value in connection.execute(select(refresh_state))}


def _set_state(connection: Connection, values: dict[str, int]) -> None:
    connection.execute(delete(refresh_state).where(refresh_state.c.name.in_(sorted(values))))
    connection.execute(
        insert(refresh_state), [{"name": k, "value": v} for k, v in sorted(values.items())]
    )


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One refresh at a time on PostgreSQL (a session advisory lock); SQLite's single writer
    already orders the refreshes' writes, and each day is rewritten whole."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        got = connection.execute(text(f"SELECT pg_try_advisory_lock({_LOCK_KEYS})")).scalar()
        connection.commit()
        if not got:
            raise RefreshRunning("another report refresh is running")
        try:
            yield
        finally:
            connection.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEYS})"))
            connection.commit()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _replace(
    engine: Engine,
    table: Any,
    where: Any,
    rows: list[dict[str, Any]],
    write_batch: int,
) -> None:
    """Delete the rows matching `where` and insert `rows`: one transaction on PostgreSQL (it
    blocks no hook call), transactions of at most `write_batch` rows on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(delete(table).where(where))
            if rows:
                connection.execute(insert(table), rows)
        return
    first = rows[:write_batch]
    with engine.begin() as connection:
        connection.execute(delete(table).where(where))
        if first:
            connection.execute(insert(table), first)
    for chunk in _chunks(rows[write_batch:], write_batch):
        with engine.begin() as connection:
            connection.execute(insert(table), list(chunk))


# ---------------------------------------------------------------------------------- days


@cache
def _day_query() -> Any:
    """One day's groups (bound :start and :end), built once: building it costs more than
    running it on a quiet day."""
    e = evaluation.alias("e")
    keys = (
        e.c.month,
        e.c.modality,
        e.c.decision,
        e.c.hook,
        e.c.mode,
        e.c.response,
        e.c.override_system,
        e.c.override_code,
        e.c.clinician,
        e.c.tenant,
    )
    reordered = _signed_later(e, REORDER_DAYS * DAY_MS, include_self=False)
    followed = _signed_later(e, URGENT_FOLLOW_UP_HOURS * 3_600_000, include_self=True)
    return (
        select(
            *keys,
            func.count().label("n"),
            func.min(e.c.ts).label("first_ts"),
            func.max(e.c.ts).label("last_ts"),
            _count_if(_avoided(e) & reordered).label("reordered"),
            _count_if((e.c.decision == URGENT) & followed).label("followed"),
        )
        .where(e.c.ts >= bindparam("start"), e.c.ts < bindparam("end"))
        .group_by(*keys)
    )


def _day_rows(
    connection: Connection, day: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(report_day rows, report_clinician_day rows) of one day, from its evaluations."""
    figures: dict[tuple[Any, ...], dict[str, Any]] = {}
    people: dict[tuple[Any, ...], dict[str, Any]] = {}
    bounds = {"start": day * DAY_MS, "end": (day + 1) * DAY_MS}
    month = _month_of_day(day)
    for r in connection.execute(_day_query(), bounds):
        key = (
            r.month,
            r.modality,
            r.decision,
            r.hook,
            r.mode,
            r.response,
            r.override_system,
            r.override_code,
        )
        row = figures.get(key)
        if row is None:
            row = figures[key] = {
                "day": day,
                **dict(zip(("month", "modality", "decision", "hook", "mode"), key, strict=False)),
                "response": r.response,
                "override_system": r.override_system,
                "override_code": r.override_code,
                "n": 0,
                "first_ts": r.first_ts,
                "last_ts": r.last_ts,
                "reordered": 0,
                "followed": 0,
            }
        row["n"] += r.n
        row["first_ts"] = min(row["first_ts"], r.first_ts)
        row["last_ts"] = max(row["last_ts"], r.last_ts)
        row["reordered"] += int(r.reordered or 0)
        row["followed"] += int(r.followed or 0)
        # The day's own month, not the row's: the report adds whole months and edge days by
        # the day, so both must agree on which month a day is in.
        who = people.setdefault(
            (r.clinician, r.tenant),
            {
                "day": day,
                "month": month,
                "clinician": r.clinician,
                "tenant": r.tenant,
                "evaluations": 0,
                "not_indicated": 0,
                "avoided": 0,
                "overridden": 0,
                "no_response": 0,
                "reordered": 0,
            },
        )
        who["evaluations"] += r.n
        if r.decision == "not-indicated":
            who["not_indicated"] += r.n
            who["avoided"] += r.n if r.response in (CANCELLED, REPLACED) else 0
            who["overridden"] += r.n if r.response == OVERRIDDEN else 0
            who["no_response"] += r.n if r.response is None else 0
        who["reordered"] += int(r.reordered or 0)
    return list(figures.values()), list(people.values())


def _refresh_day(engine: Engine, day: int, write_batch: int) -> None:
    with engine.connect() as connection:
        figures, people = _day_rows(connection, day)
    _replace(engine, day_figures, day_figures.c.day == day, figures, write_batch)
    _replace(engine, clinician_day, clinician_day.c.day == day, people, write_batch)


def _refresh_month(engine: Engine, month: str, write_batch: int) -> None:
    c = clinician_day.c
    sums = [
        func.sum(c[name]).label(name)
        for name in (
            "evaluations",
            "not_indicated",
            "avoided",
            "overridden",
            "no_response",
            "reordered",
        )
    ]
    first, last = _days_of_month(month)
    query = (
        select(c.clinician, c.tenant, *sums)
        .where(c.day >= first, c.day <= last, c.month == month)
        .group_by(c.clinician, c.tenant)
    )
    with engine.connect() as connection:
        rows = [{"month": month, **dict(r._mapping)} for r in connection.execute(query)]
    _replace(engine, clinician_month, clinician_month.c.month == month, rows, write_batch)


# ------------------------------------------------------------------------------ patients

_PATIENT_COLUMNS = (
    "id",
    "ts",
    "patient",
    "decision",
    "hook",
    "modality",
    "mode",
    "response",
    "policy_version",
    "criteria_met",
    "reasons_met",
    "consult_id",
)


def _signed(row: Any) -> bool:
    return row.hook == "order-sign" and row.response not in (CANCELLED, REPLACED)


def _episodes(patient: str, rows: list[Any]) -> list[dict[str, Any]]:
    """The patient's report_episode rows (rows in ts order)."""
    signed = [r.ts for r in rows if _signed(r)]
    window = HEDIS_DAYS * DAY_MS
    firsts: dict[str, dict[int, int]] = defaultdict(dict)  # kind -> day -> first ts
    for r in rows:
        if r.decision != "not-indicated":
            continue
        for kind in (ALL, r.mode):
            firsts[kind].setdefault(day_of(r.ts), r.ts)
    out = []
    for kind, days in firsts.items():
        previous = None
        for day in sorted(days):
            first = days[day]
            imaged = any(first <= s <= first + window for s in signed)
            out.append(
                {
                    "patient": patient,
                    "kind": kind,
                    "day": day,
                    "prev_day": previous,
                    "imaged": int(imaged),
                }
            )
            previous = day
    return out


def _alarms(rows: list[Any]) -> list[dict[str, Any]]:
    """The patient's report_missed_alarm rows: each reassuring evaluation with the first urgent
    one later and at most MISSED_ALARM_DAYS after it (rows in ts order)."""
    window = MISSED_ALARM_DAYS * DAY_MS
    urgent = [r for r in rows if r.decision == URGENT]
    out = []
    for e in rows:
        if e.decision not in REASSURING:
            continue
        later = [u for u in urgent if e.ts < u.ts <= e.ts + window]
        if not later:
            continue
        u = min(later, key=lambda r: (r.ts, r.id))
        values = {f"e_{name}": getattr(e, name) for name in _PATIENT_COLUMNS}
        values.update({f"u_{name}": getattr(u, name) for name in _PATIENT_COLUMNS})
        out.append(
            {
                "evaluation_id": e.id,
                "ts": e.ts,
                "patient": e.patient,
                "decision": e.decision,
                "mode": e.mode,
                "item": json.dumps(watch_item(values), sort_keys=True),
            }
        )
    return out


def _refresh_patients(engine: Engine, chosen: Any, write_batch: int) -> set[int]:
    """Recompute the episode and missed-alarm rows of the patients `chosen(column)` selects;
    the episode days touched (old and new)."""
    e = evaluation.c
    query = (
        select(*(e[name] for name in _PATIENT_COLUMNS))
        .where(chosen(e.patient))
        .order_by(e.patient, e.ts, e.id)
    )
    by_patient: dict[str, list[Any]] = defaultdict(list)
    with engine.connect() as connection:
        for row in connection.execute(query):
            by_patient[row.patient].append(row)
        old_days = set(
            connection.scalars(select(episode.c.day).where(chosen(episode.c.patient)).distinct())
        )
    episodes: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    for patient, rows in by_patient.items():
        episodes.extend(_episodes(patient, rows))
        alarms.extend(_alarms(rows))
    _replace(engine, episode, chosen(episode.c.patient), episodes, write_batch)
    _replace(engine, missed_alarm, chosen(missed_alarm.c.patient), alarms, write_batch)
    return old_days | {row["day"] for row in episodes}


def _refresh_episode_days(engine: Engine, days: Iterable[int], write_batch: int) -> None:
    c = episode.c
    for chunk in _chunks(sorted(days), 100):
        query = (
            select(c.kind, c.day, c.prev_day, c.imaged, func.count().label("n"))
            .where(c.day.in_(list(chunk)))
            .group_by(c.kind, c.day, c.prev_day, c.imaged)
        )
        with engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(query)]
        _replace(engine, episode_days, episode_days.c.day.in_(list(chunk)), rows, write_batch)


# ------------------------------------------------------------------------------- changes


@dataclass(slots=True)
class _Changes:
    touched: dict[str, set[int]]  # patient -> changed moments
    new_rows: int
    changed_rows: int
    high_water: int
    change_ids: list[int]
    gaps_found: list[int]
    gaps_new: list[int]
    gaps_expired: list[int]


def _collect(engine: Engine, state: dict[str, int], now_ms: int) -> _Changes:
    """Everything changed since the high-water mark, as (patient, ts) moments."""
    e = evaluation.c
    touched: dict[str, set[int]] = defaultdict(set)
    mark = state["evaluation_id"]
    seen: set[int] = set()
    gaps_found: list[int] = []
    gaps_new: list[int] = []
    gaps_expired: list[int] = []
    with engine.connect() as connection:
        last = mark
        while True:
            batch = connection.execute(
                select(e.id, e.patient, e.ts).where(e.id > last).order_by(e.id).limit(ID_BATCH)
            ).all()
            for row in batch:
                touched[row.patient].add(row.ts)
                seen.add(row.id)
            if len(batch) < ID_BATCH:
                break
            last = batch[-1].id
        high_water = max(seen, default=mark)
        if engine.dialect.name == "postgresql":
            gaps = {
                i: at
                for i, at in connection.execute(select(refresh_gap.c.id, refresh_gap.c.noticed_ms))
            }
            for chunk in _chunks(sorted(gaps), 1000):
                for row in connection.execute(
                    select(e.id, e.patient, e.ts).where(e.id.in_(list(chunk)))
                ):
                    touched[row.patient].add(row.ts)
                    gaps_found.append(row.id)
            found = set(gaps_found)
            gaps_expired = [
                i for i, at in gaps.items() if i not in found and now_ms - at > GAP_SETTLE_MS
            ]
            gaps_new = [i for i in range(mark + 1, high_water) if i not in seen]
        changes = connection.execute(select(change.c.id, change.c.patient, change.c.ts)).all()
    for row in changes:
        touched[row.patient].add(row.ts)
    return _Changes(
        touched=touched,
        new_rows=len(seen) + len(gaps_found),
        changed_rows=len(changes),
        high_water=high_water,
        change_ids=[row.id for row in changes],
        gaps_found=gaps_found,
        gaps_new=gaps_new,
        gaps_expired=gaps_expired,
    )


def _look_back_days(engine: Engine, touched: dict[str, set[int]]) -> set[int]:
    """Days of the touched moments, and of the avoided and urgent evaluations whose
    look-ahead window reaches a touched moment of their patient."""
    days = {day_of(ts) for moments in touched.values() for ts in moments}
    e = evaluation.c
    patients = sorted(touched)
    with engine.connect() as connection:
        for chunk in _chunks(patients, PATIENT_BATCH):
            lowest = min(min(touched[p]) for p in chunk) - LOOK_BACK_MS
            highest = max(max(touched[p]) for p in chunk)
            query = select(e.patient, e.ts).where(
                e.patient.in_(list(chunk)),
                e.decision.in_(("not-indicated", URGENT)),
                e.ts >= lowest,
                e.ts <= highest,
            )
            for patient, ts in connection.execute(query):
                if any(ts <= t <= ts + LOOK_BACK_MS for t in touched[patient]):
                    days.add(day_of(ts))
    return days


def _all_days(engine: Engine) -> set[int]:
    """Every day with evaluations, and every day the rollups hold (to be emptied if gone)."""
    day = (evaluation.c.ts // DAY_MS).label("day")
    with engine.connect() as connection:
        days = set(connection.scalars(select(day).distinct()))
        days |= set(connection.scalars(select(day_figures.c.day).distinct()))
        days |= set(connection.scalars(select(clinician_day.c.day).distinct()))
    return {int(d) for d in days}


def _patient_ranges(engine: Engine) -> Iterator[Any]:
    """Selectors of consecutive patient ranges covering every string, PATIENT_BATCH patients
    with evaluations each (keyset on the patient index): a rollup row of a patient who has no
    evaluation left falls in a range too, and is deleted."""
    column = evaluation.c.patient
    last: str | None = None
    while True:
        with engine.connect() as connection:
            query = select(column).distinct().order_by(column).limit(PATIENT_BATCH)
            if last is not None:
                query = query.where(column > last)
            batch = list(connection.scalars(query))
        if len(batch) < PATIENT_BATCH:
            low = last
            yield lambda c, low=low: (c > low) if low is not None else c.is_not(None)
            return
        low, high = last, batch[-1]
        yield (
            lambda c, low=low, high=high: (
                ((c > low) & (c <= high)) if low is not None else (c <= high)
            )
        )
        last = high


def refresh(
    engine: Engine,
    *,
    full: bool = False,
    write_batch: int = WRITE_BATCH,
    now_ms: int | None = None,
) -> RefreshResult:
    """Bring the rollups up to date (everything from the raw rows when `full` or never run)."""
    started = time.perf_counter()
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    with _exclusive(engine):
        with engine.connect() as connection:
            state = read_state(connection)
        if full or "evaluation_id" not in state:
            return _refresh_all(engine, write_batch, now_ms, started)
        changes = _collect(engine, state, now_ms)
        days = _look_back_days(engine, changes.touched)
        for day in sorted(days):
            _refresh_day(engine, day, write_batch)
        months = {_month_of_day(day) for day in days}
        for month in sorted(months):
            _refresh_month(engine, month, write_batch)
        episode_touched: set[int] = set()
        patients = sorted(changes.touched)
        for chunk in _chunks(patients, PATIENT_BATCH):
            selector = lambda c, chunk=chunk: c.in_(list(chunk))  # noqa: E731
            episode_touched |= _refresh_patients(engine, selector, write_batch)
        _refresh_episode_days(engine, episode_touched, write_batch)
        with engine.begin() as connection:
            for chunk in _chunks(changes.change_ids, 1000):
                connection.execute(delete(change).where(change.c.id.in_(list(chunk))))
            done = changes.gaps_found + changes.gaps_expired
            for chunk in _chunks(done, 1000):
                connection.execute(delete(refresh_gap).where(refresh_gap.c.id.in_(list(chunk))))
            if changes.gaps_new:
                connection.execute(
                    insert(refresh_gap), [{"id": i, "noticed_ms": now_ms} for i in changes.gaps_new]
                )
            _set_state(
                connection,
                {"evaluation_id": changes.high_water, "refreshed_at_ms": now_ms},
            )
    return RefreshResult(
        full=False,
        new_rows=changes.new_rows,
        changed_rows=changes.changed_rows,
        days=len(days),
        months=len(months),
        patients=len(patients),
        evaluation_id=changes.high_water,
        seconds=round(time.perf_counter() - started, 3),
    )


def _refresh_all(engine: Engine, write_batch: int, now_ms: int, started: float) -> RefreshResult:
    """Rebuild every rollup from the raw rows, day by day and patient batch by batch."""
    e = evaluation.c
    with engine.connect() as connection:
        # Marked first: a row arriving during the rebuild is above the mark, so the next
        # refresh takes it (again), and changes logged from now on are kept for it.
        high_water = int(connection.execute(select(func.max(e.id))).scalar() or 0)
        change_ids = list(connection.scalars(select(change.c.id)))
        # Ids just below the mark that are missing may be transactions still open (PostgreSQL
        # hands out ids before commit): looked at again by the next refreshes, as for new rows.
        recent = set(connection.scalars(select(e.id).where(e.id > high_water - RECENT_IDS)))
        gaps = [
            i for i in range(max(1, high_water - RECENT_IDS + 1), high_water) if i not in recent
        ]
    days = _all_days(engine)
    for day in sorted(days):
        _refresh_day(engine, day, write_batch)
    months = {_month_of_day(day) for day in days}
    with engine.connect() as connection:
        months |= set(connection.scalars(select(clinician_month.c.month).distinct()))
    for month in sorted(months):
        _refresh_month(engine, month, write_batch)
    episode_touched: set[int] = set()
    for chosen in _patient_ranges(engine):
        episode_touched |= _refresh_patients(engine, chosen, write_batch)
    with engine.connect() as connection:
        patients = int(
            connection.execute(select(func.count(evaluation.c.patient.distinct()))).scalar() or 0
        )
    with engine.connect() as connection:
        episode_touched |= set(connection.scalars(select(episode_days.c.day).distinct()))
    _refresh_episode_days(engine, episode_touched, write_batch)
    with engine.begin() as connection:
        for chunk in _chunks(change_ids, 1000):
            connection.execute(delete(change).where(change.c.id.in_(list(chunk))))
        connection.execute(delete(refresh_gap))
        if engine.dialect.name == "postgresql" and gaps:
            connection.execute(insert(refresh_gap), [{"id": i, "noticed_ms": now_ms} for i in gaps])
        _set_state(connection, {"evaluation_id": high_water, "refreshed_at_ms": now_ms})
    return RefreshResult(
        full=True,
        new_rows=0,
        changed_rows=len(change_ids),
        days=len(days),
        months=len(months),
        patients=patients,
        evaluation_id=high_water,
        seconds=round(time.perf_counter() - started, 3),
    )

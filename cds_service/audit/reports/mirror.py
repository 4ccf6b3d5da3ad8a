"""The mirror report (spiegelinformatie): one clinician's figures beside their peers'.

The clinician's own figures are exact; the peers (the other clinicians of the same
organisation with evaluations in the period) appear only as a median and interquartile range
per figure, and only when at least MIN_PEERS of them have that figure. No peer's pseudonym,
label or single figure leaves this module.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, exists, func, or_, select

from cds_service.audit.models import CANCELLED, OVERRIDDEN, REPLACED, evaluation
from cds_service.audit.reports.figures import DAY_MS, HEDIS_DAYS, Period, report_connection
from cds_service.audit.reports.labels import label_of
from cds_service.audit.reports.translations import MIN_PEERS, definitions

SHARES = ("notIndicatedShare", "avoidedShare", "overriddenShare", "measure28Rate")


def _in_period(e: Any, period: Period) -> Any:
    return and_(e.c.ts >= period.start_ms, e.c.ts < period.end_ms)


def _organisation_of(connection: Connection, period: Period, clinician: str) -> str | None:
    """The tenant where the clinician made most evaluations in the period (ties: by name)."""
    e = evaluation.alias("e")
    n = func.count().label("n")
    query = (
        select(e.c.tenant, n)
        .where(e.c.clinician == clinician, _in_period(e, period))
        .group_by(e.c.tenant)
        .order_by(n.desc(), e.c.tenant)
        .limit(1)
    )
    row = connection.execute(query).first()
    return None if row is None else row.tenant


def _counts_query(period: Period, tenant: str) -> Any:
    e = evaluation.alias("e")
    not_indicated = e.c.decision == "not-indicated"
    avoided = and_(not_indicated, e.c.response.in_((CANCELLED, REPLACED)))
    overridden = and_(not_indicated, e.c.response == OVERRIDDEN)
    return (
        select(
            e.c.clinician,
            func.count().label("evaluations"),
            func.sum(case((not_indicated, 1), else_=0)).label("notIndicated"),
            func.sum(case((avoided, 1), else_=0)).label("avoided"),
            func.sum(case((overridden, 1), else_=0)).label("overridden"),
        )
        .where(e.c.tenant == tenant, _in_period(e, period))
        .group_by(e.c.clinician)
    )


def _reasons_query(period: Period, tenant: str) -> Any:
    e = evaluation.alias("e")
    keys = (e.c.clinician, e.c.override_system, e.c.override_code)
    return (
        select(*keys, func.count().label("n"))
        .where(
            e.c.tenant == tenant,
            _in_period(e, period),
            e.c.decision == "not-indicated",
            e.c.response == OVERRIDDEN,
        )
        .group_by(*keys)
    )


def _measure_query(period: Period, tenant: str) -> Any:
    """Per clinician: episodes of the organisation indexed at their first not-indicated
    evaluation there, and those imaged within HEDIS_DAYS (as figures._hedis_queries)."""
    e = evaluation.alias("e")
    first = (
        select(e.c.patient.label("patient"), func.min(e.c.ts).label("ts"))
        .where(e.c.tenant == tenant, _in_period(e, period), e.c.decision == "not-indicated")
        .group_by(e.c.patient)
        .subquery("first")
    )
    o = evaluation.alias("o")
    owner = (
        select(first.c.patient, first.c.ts, func.min(o.c.clinician).label("clinician"))
        .join(
            o,
            and_(
                o.c.patient == first.c.patient,
                o.c.ts == first.c.ts,
                o.c.tenant == tenant,
                o.c.decision == "not-indicated",
            ),
        )
        .group_by(first.c.patient, first.c.ts)
        .subquery("owner")
    )
    s = evaluation.alias("s")
    imaged = exists().where(
        s.c.patient == owner.c.patient,
        s.c.ts >= owner.c.ts,
        s.c.ts <= owner.c.ts + HEDIS_DAYS * DAY_MS,
        s.c.hook == "order-sign",
        or_(s.c.response.is_(None), s.c.response.not_in((CANCELLED, REPLACED))),
    )
    return select(
        owner.c.clinician,
        func.count().label("episodes"),
        func.sum(case((imaged, 1), else_=0)).label("imaged"),
    ).group_by(owner.c.clinician)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _per_clinician(connection: Connection, period: Period, tenant: str) -> dict[str, Any]:
    """{clinician: figures} for every clinician of the organisation in the period."""
    people: dict[str, dict[str, Any]] = {}
    for row in connection.execute(_counts_query(period, tenant)):
        values = row._mapping
        people[values["clinician"]] = {
            "evaluations": int(values["evaluations"]),
            "notIndicated": int(values["notIndicated"] or 0),
            "avoided": int(values["avoided"] or 0),
            "overridden": int(values["overridden"] or 0),
            "reasons": defaultdict(int),
            "episodes": 0,
            "withoutImaging": 0,
        }
    for row in connection.execute(_reasons_query(period, tenant)):
        values = row._mapping
        reason = (values["override_system"] or "", values["override_code"] or "none")
        people[values["clinician"]]["reasons"][reason] += int(values["n"])
    for row in connection.execute(_measure_query(period, tenant)):
        values = row._mapping
        person = people[values["clinician"]]
        person["episodes"] = int(values["episodes"])
        person["withoutImaging"] = person["episodes"] - int(values["imaged"] or 0)
    for person in people.values():
        person["notIndicatedShare"] = _rate(person["notIndicated"], person["evaluations"])
        person["avoidedShare"] = _rate(person["avoided"], person["notIndicated"])
        person["overriddenShare"] = _rate(person["overridden"], person["notIndicated"])
        person["measure28Rate"] = _rate(person["withoutImaging"], person["episodes"])
    return people


def peer_summary(values: list[float]) -> dict[str, Any]:
    """Median and quartiles of the peers' values (inclusive quartiles), or why there are none."""
    if len(values) < MIN_PEERS:
        return {"peers": len(values), "median": None, "q1": None, "q3": None, "shown": False}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {
        "peers": len(values),
        "median": round(median, 4),
        "q1": round(q1, 4),
        "q3": round(q3, 4),
        "shown": True,
    }


def _figure(own: float | None, peers: list[float | None]) -> dict[str, Any]:
    return {"own": own, "peers": peer_summary([p for p in peers if p is not None])}


def _empty_own() -> dict[str, Any]:
    return {
        "evaluations": 0,
        "notIndicated": 0,
        "avoided": 0,
        "overridden": 0,
        "reasons": {},
        "episodes": 0,
        "withoutImaging": 0,
        **dict.fromkeys(SHARES),
    }


def _assemble(
    clinician: str, tenant: str | None, people: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    own = people.get(clinician, _empty_own())
    peers = [figures for key, figures in people.items() if key != clinician]
    shares = {name: _figure(own[name], [p[name] for p in peers]) for name in SHARES}
    reasons = sorted({reason for person in people.values() for reason in person["reasons"]})
    by_reason = []
    for system, code in reasons:
        mine = own["reasons"].get((system, code), 0)
        by_reason.append(
            {
                "system": system,
                "code": code,
                "count": mine,
                "share": _figure(
                    _rate(mine, own["notIndicated"]),
                    [_rate(p["reasons"].get((system, code), 0), p["notIndicated"]) for p in peers],
                ),
            }
        )
    enough = len(peers) >= MIN_PEERS
    return {
        "report": "mirror",
        "clinician": {"key": clinician, "label": label_of("clinician", clinician)},
        "organisation": tenant,
        "peers": {
            "count": len(peers),
            "minimum": MIN_PEERS,
            "shown": enough,
            "reason": None if enough else "too-few-peers",
        },
        "own": {
            "evaluations": own["evaluations"],
            "notIndicated": own["notIndicated"],
            "avoided": own["avoided"],
            "overridden": own["overridden"],
            "measure28": {
                "episodes": own["episodes"],
                "withoutImaging": own["withoutImaging"],
                "rate": own["measure28Rate"],
            },
        },
        # Without MIN_PEERS peers no figure of theirs is shown, not even one that enough
        # of them happen to have: the report says why instead.
        "figures": shares if enough else {n: {"own": own[n], "peers": None} for n in SHARES},
        "overrideReasons": by_reason if enough else [_without_peers(r) for r in by_reason],
    }


def _without_peers(reason: dict[str, Any]) -> dict[str, Any]:
    return {**reason, "share": {"own": reason["share"]["own"], "peers": None}}


def compute_mirror(
    engine: Engine, period: Period, clinician: str, *, language: str
) -> dict[str, Any]:
    """The mirror report of one clinician (by pseudonym) for a period, as a JSON-ready dict."""
    with report_connection(engine) as connection:
        tenant = _organisation_of(connection, period, clinician)
        people = {} if tenant is None else _per_clinician(connection, period, tenant)
    report = _assemble(clinician, tenant, people)
    if tenant is None:
        # Reasons from an empty organisation are meaningless: keep the list empty.
        report["overrideReasons"] = []
    texts = definitions(language)
    names = ("mirror report", "label", "not-indicated", "scans avoided", "overridden")
    return {
        **report,
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "language": language,
        "definitions": {name: texts[name] for name in (*names, "28-day measure")},
    }

"""The safety case as one HTML page (or text): hazards, risk matrices, controls, traceability."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine

from cds_service.audit.models import MISSED_ALARM_DAYS
from cds_service.audit.reports.figures import Period, missed_alarms, report_connection
from cds_service.rules.criteria import IMPLEMENTS
from cds_service.rules.knowledge import Knowledge
from cds_service.safety.hazards import HazardLog

_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One POLICY rule: where it is stated, the checks that implement it, what it yields."""

    rule: str
    section: str
    checks: tuple[str, ...]
    yields: tuple[str, ...]
    hazards: tuple[str, ...]


def traceability(knowledge: Knowledge, log: HazardLog) -> list[TraceRow]:
    """Every rule id with its implementing checks and the hazards it controls."""
    checks: dict[str, list[str]] = {}
    for check, rule_ids in IMPLEMENTS.items():
        for rule_id in rule_ids:
            checks.setdefault(rule_id, []).append(check)
    hazards: dict[str, list[str]] = {}
    for hazard in log.hazards:
        for control in hazard.controls:
            if control.kind == "rule":
                hazards.setdefault(control.ref, []).append(hazard.id)
    return [
        TraceRow(
            rule.id,
            rule.section,
            tuple(checks.get(rule.id, ())),
            rule.yields,
            tuple(dict.fromkeys(hazards.get(rule.id, ()))),
        )
        for rule in knowledge.rules.values()
    ]


def risk_matrix(log: HazardLog, when: str) -> list[list[list[str]]]:
    """5 x 5 cells (severity 5..1 down, likelihood 1..5 across) of hazard ids."""
    cells: list[list[list[str]]] = [[[] for _ in range(5)] for _ in range(5)]
    for hazard in log.hazards:
        likelihood = hazard.likelihood_before if when == "before" else hazard.likelihood_after
        cells[5 - hazard.severity][likelihood - 1].append(hazard.id)
    return cells


# What the safety report says when it was not given the audit store's counts.
WATCH_HOW_TO = (
    "Counts not read: run `cds-service safety-report --html --audit [--from D --to D]` "
    "where the audit store is reachable (CDS_DATABASE_URL or --database-url), or see the "
    "missed-alarm list of `cds-service report --from D --to D`; the service counts new cases "
    "in the Prometheus counter cds_missed_alarms_total."
)


def watch_counts(engine: Engine, period: Period) -> dict[str, Any]:
    """The missed-alarm watch's counts for a period, from the audit store (no list: the
    avoided-scans report holds the pseudonymous list for clinical review)."""
    with report_connection(engine) as connection:
        watch = missed_alarms(connection, period)
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "total": watch["total"],
        "patients": watch["patients"],
        "byDecision": watch["byDecision"],
        "byMode": watch["byMode"],
        "policyVersions": sorted(
            {(i["earlier"]["policyVersion"], i["urgent"]["policyVersion"]) for i in watch["items"]}
        ),
    }


def context(
    knowledge: Knowledge, log: HazardLog, watch: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the safety report shows; `watch` holds the missed-alarm counts, if read."""
    policy_version, _, content_hash = knowledge.version.partition("+")
    rows = traceability(knowledge, log)
    kinds = Counter(c.kind for h in log.hazards for c in h.controls)
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "policy_version": policy_version,
        "content_hash": content_hash,
        "log": log,
        "hazards": log.hazards,
        "open": log.open_hazards(),
        "acceptable": log.acceptable_risk,
        "before": risk_matrix(log, "before"),
        "after": risk_matrix(log, "after"),
        "trace": rows,
        "untraced": [r.rule for r in rows if not r.checks],
        "kinds": dict(kinds),
        "tests": log.test_ids(),
        "watch": watch,
        "watch_days": MISSED_ALARM_DAYS,
        "watch_how_to": WATCH_HOW_TO,
    }


def render_html(knowledge: Knowledge, log: HazardLog, watch: dict[str, Any] | None = None) -> str:
    """The safety case as a self-contained HTML page."""
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("safety.html.j2").render(**context(knowledge, log, watch))


def render_text(knowledge: Knowledge, log: HazardLog, watch: dict[str, Any] | None = None) -> str:
    """A plain-text summary of the safety case for a terminal."""
    data = context(knowledge, log, watch)
    lines = [
        f"Safety case — rule set {data['policy_version']} ({data['content_hash']})",
        f"{len(log.hazards)} hazards, {sum(data['kinds'].values())} controls, "
        f"{len(data['tests'])} tests; acceptable residual risk <= {log.acceptable_risk}",
    ]
    for hazard in log.hazards:
        lines.append(
            f"  {hazard.id} {hazard.title}: risk {hazard.risk_before} -> {hazard.risk_after}"
            f" ({len(hazard.controls)} controls)"
        )
    lines.append(f"open (residual risk above acceptable): {[h.id for h in data['open']] or 'none'}")
    lines.append(
        f"POLICY rules: {len(data['trace'])}, without a check: {data['untraced'] or 'none'}"
    )
    if watch is None:
        lines.append(f"missed-alarm watch ({MISSED_ALARM_DAYS} days): {WATCH_HOW_TO}")
    else:
        lines.append(
            f"missed-alarm watch ({MISSED_ALARM_DAYS} days), {watch['from']} to {watch['to']}: "
            f"{watch['total']} reassuring evaluations followed by an urgent one "
            f"({watch['patients']} patients)"
        )
    return "\n".join(lines)

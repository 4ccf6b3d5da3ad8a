"""Runs the report for the CLI and the HTTP endpoint: settings → figures → rendered text."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser
from cds_service.audit.reports.comparison import compare_periods
from cds_service.audit.reports.figures import (
    FIRST_PAGE,
    AlarmPage,
    Costs,
    Period,
    compute_report,
    report_connection,
)
from cds_service.audit.reports.labels import label_report
from cds_service.audit.reports.mirror import compute_mirror
from cds_service.audit.reports.render import render, render_mirror
from cds_service.audit.reports.translations import definitions
from cds_service.config import Settings


def costs_of(settings: Settings) -> Costs:
    """Tariffs, doses and currency from the settings."""
    return Costs(dict(settings.tariffs), dict(settings.dose_msv), settings.currency)


@contextmanager
def progress_steps(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A step callback drawing a progress bar on stderr when enabled (a terminal), else silent."""
    if not enabled:
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task("report", total=total)
        started = False

        def step(description: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=description)

        yield step
        bar.update(task, completed=total)


def full_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    *,
    by: str | None,
    language: str,
    step: Callable[[str], None] = lambda _: None,
    source: str = "raw",
    alarms: AlarmPage = FIRST_PAGE,
) -> dict[str, Any]:
    """The figures of figures.compute_report, with readable labels, the comparison with the
    period before and the definitions in `language`."""
    report = compute_report(
        engine, period, costs_of(settings), by=by, step=step, source=source, alarms=alarms
    )
    step("compared with the period before")
    with report_connection(engine) as connection:
        report["versusPrevious"] = compare_periods(connection, period, report)
    report["language"] = language
    report["definitions"] = definitions(language)
    return label_report(report)


def build_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    *,
    by: str | None,
    fmt: str,
    language: str = "en",
    progress: bool = False,
    source: str = "auto",
    alarms: AlarmPage = FIRST_PAGE,
) -> tuple[dict[str, Any], str]:
    """The figures and their rendering in `fmt`, its words in `language`, from `source`:
    "rollups", "raw", or "auto" (the rollups once a refresh has run, else the raw rows)."""
    total = 8 if by not in (None, "clinician") else 7
    source = resolve_source(engine, source)
    with progress_steps(progress, total + 1) as step:
        report = full_report(
            engine,
            settings,
            period,
            by=by,
            language=language,
            step=step,
            source=source,
            alarms=alarms,
        )
        step(f"rendering {fmt}")
        return report, render(report, fmt, language)


def clinician_pseudonym(settings: Settings, identifier: str) -> str:
    """The pseudonym the audit store keeps for a practitioner (context.userId, e.g.
    "Practitioner/123"), under the organisation's CDS_PSEUDONYM_KEY."""
    key = settings.pseudonym_key or (DEVELOPMENT_KEY if settings.is_development else "")
    if not key:
        raise ValueError("CDS_PSEUDONYM_KEY is not set: pseudonyms cannot be computed")
    return Pseudonymiser(key)("clinician", identifier)


def build_mirror(
    engine: Engine,
    settings: Settings,
    period: Period,
    clinician: str,
    *,
    fmt: str,
    language: str = "en",
) -> tuple[dict[str, Any], str]:
    """The mirror report of one clinician (by pseudonym) and its rendering in `fmt`."""
    report = compute_mirror(engine, period, clinician, language=language)
    return report, render_mirror(report, fmt, language)


def resolve_source(engine: Engine, source: str) -> str:
    """ "auto" made concrete: the rollups once `cds-service report refresh` has run."""
    if source != "auto":
        return source
    from cds_service.audit.reports.figures import report_connection
    from cds_service.audit.reports.rollups import is_refreshed

    with report_connection(engine) as connection:
        return "rollups" if is_refreshed(connection) else "raw"

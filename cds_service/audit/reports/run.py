"""Runs the report for the CLI and the HTTP endpoint: settings → figures → rendered text."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from cds_service.audit.reports.figures import (
    FIRST_PAGE,
    AlarmPage,
    Costs,
    Period,
    compute_report,
)
from cds_service.audit.reports.render import render
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


def build_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    *,
    by: str | None,
    fmt: str,
    progress: bool = False,
    source: str = "auto",
    alarms: AlarmPage = FIRST_PAGE,
) -> tuple[dict[str, Any], str]:
    """The figures and their rendering in `fmt`, from `source`: "rollups", "raw", or "auto"
    (the rollups once a refresh has run, else the raw rows)."""
    total = 7 if by not in (None, "clinician") else 6
    source = resolve_source(engine, source)
    with progress_steps(progress, total + 1) as step:
        report = compute_report(
            engine, period, costs_of(settings), by=by, step=step, source=source, alarms=alarms
        )
        step(f"rendering {fmt}")
        return report, render(report, fmt)


def resolve_source(engine: Engine, source: str) -> str:
    """ "auto" made concrete: the rollups once `cds-service report refresh` has run."""
    if source != "auto":
        return source
    from cds_service.audit.reports.figures import report_connection
    from cds_service.audit.reports.rollups import is_refreshed

    with report_connection(engine) as connection:
        return "rollups" if is_refreshed(connection) else "raw"

"""Runs the report for the CLI and the HTTP endpoint: settings → figures → rendered text."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from cds_service.audit.reports.figures import Costs, Period, compute_report
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
) -> tuple[dict[str, Any], str]:
    """The figures and their rendering in `fmt`."""
    total = 7 if by not in (None, "clinician") else 6
    with progress_steps(progress, total + 1) as step:
        report = compute_report(engine, period, costs_of(settings), by=by, step=step)
        step(f"rendering {fmt}")
        return report, render(report, fmt)

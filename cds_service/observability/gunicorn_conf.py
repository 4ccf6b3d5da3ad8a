"""Gunicorn settings used by docker/entrypoint.sh (`--config python:…`).

- gunicorn's own log lines are JSON like the app's (see logs.py);
- with PROMETHEUS_MULTIPROC_DIR set, the directory is emptied when gunicorn starts (stale
  files of an earlier run would be added to the new counts) and a stopped worker's live files
  are marked dead, as prometheus_client's multiprocess mode requires.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cds_service.config import LOG_LEVELS
from cds_service.observability.logs import gunicorn_logconfig

_level = os.environ.get("CDS_LOG_LEVEL", "INFO").upper()
# A bad CDS_LOG_LEVEL is reported by the app's own start-up check, with the variable's name.
logconfig_dict = gunicorn_logconfig(_level if _level in LOG_LEVELS else "INFO")


def on_starting(server: Any) -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR (creating it if needed) before any worker starts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client that a worker process is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

"""Gunicorn settings used by cds_service/serve.sh (`--config python:…`).

- gunicorn's own log lines are JSON like the app's (see logs.py);
- the worker is the threaded one with a deadline on every request (worker.py), so slow
  clients cannot hold the service; a bad CDS_REQUEST_DEADLINE_SECONDS stops gunicorn here;
- no control socket: gunicorn 25+ would otherwise open one in the home directory, a second
  way in that nobody uses (the entrypoint's signals do the same job);
- with PROMETHEUS_MULTIPROC_DIR set, the directory is emptied when gunicorn starts (stale
  files of an earlier run would be added to the new counts) and a stopped worker's live files
  are marked dead, as prometheus_client's multiprocess mode requires.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cds_service.config import LOG_LEVELS
from cds_service.observability.logs import gunicorn_logconfig
from cds_service.observability.worker import request_deadline_seconds

_level = os.environ.get("CDS_LOG_LEVEL", "INFO").upper()
# A bad CDS_LOG_LEVEL is reported by the app's own start-up check, with the variable's name.
logconfig_dict = gunicorn_logconfig(_level if _level in LOG_LEVELS else "INFO")

worker_class = "cds_service.observability.worker.DeadlineThreadWorker"
control_socket_disable = True

try:
    request_deadline_seconds()
except ValueError as _bad:
    # Refused before any worker starts, with the variable's name, like the app's own settings.
    print(f"configuration error: {_bad}", file=sys.stderr)
    sys.exit(2)


def on_starting(server: Any) -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR (creating it if needed) before any worker starts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def worker_exit(server: Any, worker: Any) -> None:
    """Replay the audit spool (at most 5 s) before a worker's process ends."""
    app = getattr(worker, "wsgi", None)
    audit = getattr(app, "extensions", {}).get("cds_audit")
    if audit is not None:
        audit.flush_spool(5.0)


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client that a worker process is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

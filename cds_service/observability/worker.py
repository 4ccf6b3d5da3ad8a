"""The gunicorn worker the entrypoint runs: threads, with a deadline on every request.

gunicorn's threaded worker keeps idle connections in its poller at no cost, but once a
client has sent its first bytes a thread reads the request to the end, however slowly the
rest arrives: a client dripping one header line every few seconds holds that thread for as
long as it likes, and a handful of them starve `/healthz` and every hook call (issue 12).
This worker gives each request a deadline, from the moment a thread takes it until the
answer is written; past it the connection is shut down, which wakes the blocked read, and
the thread is free again. A slow client therefore costs one thread for a bounded time, and
the threads (CDS_THREADS per worker) outnumber what a few slow clients can hold. A buffering
reverse proxy in front remains the advice for production (README, "Behind a reverse proxy").
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

DEADLINE_VARIABLE = "CDS_REQUEST_DEADLINE_SECONDS"
DEFAULT_DEADLINE_SECONDS = 15.0


def request_deadline_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The per-request deadline from CDS_REQUEST_DEADLINE_SECONDS; ValueError when unusable."""
    environ = os.environ if environ is None else environ
    raw = environ.get(DEADLINE_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_DEADLINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{DEADLINE_VARIABLE} must be a number of seconds, not {raw!r}") from None
    # Under a second would cut off ordinary hook calls; over ten minutes is no bound at all.
    if not 1.0 <= value <= 600.0:
        raise ValueError(f"{DEADLINE_VARIABLE} must be between 1 and 600 seconds, not {raw!r}")
    return value


class DeadlineThreadWorker(ThreadWorker):
    """A gthread worker that shuts down connections whose request outlives its deadline."""

    def init_process(self) -> None:
        """Read the deadline and set up the table of requests in progress."""
        self.request_deadline = request_deadline_seconds()
        self._in_progress: dict[Any, float] = {}
        self._in_progress_lock = threading.Lock()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        """Handle one request on `conn` (in a pool thread) under the request deadline."""
        with self._in_progress_lock:
            self._in_progress[conn] = time.monotonic() + self.request_deadline
        try:
            return super().handle(conn)
        finally:
            with self._in_progress_lock:
                self._in_progress.pop(conn, None)

    def murder_keepalived(self, force: bool = False) -> None:
        """Expire idle connections as gunicorn does, then cut off requests past their deadline."""
        # gunicorn 27 added `force`; its stubs (types-gunicorn 26.2) still lack it.
        super().murder_keepalived(force)  # type: ignore[call-arg]
        self.cut_off_overdue()

    def cut_off_overdue(self) -> int:
        """Shut down every connection whose request passed its deadline; return how many."""
        now = time.monotonic()
        with self._in_progress_lock:
            overdue = [conn for conn, deadline in self._in_progress.items() if deadline <= now]
            for conn in overdue:
                # Dropped from the table so a connection is shut down once, not every second.
                del self._in_progress[conn]
        for conn in overdue:
            try:
                # Wakes the thread blocked in recv() or send(); gunicorn then closes the
                # connection as a client disconnect, without an error line.
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client or by the thread itself
        if overdue:
            self.log.info("request deadline passed: %d connection(s) closed", len(overdue))
        return len(overdue)

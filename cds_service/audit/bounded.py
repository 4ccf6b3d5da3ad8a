"""Database work with a bound on the wait: a hook call waits at most CDS_DATABASE_WAIT_SECONDS.

The work runs on a few worker threads of the gate; the caller waits for its result at most the
time left of its call's allowance and otherwise gets `DatabaseStalled` (and then spools its rows
or falls back to memory). A database that stopped answering (a black-holed network, a peer that
accepts and never replies) leaves a worker blocked: its connections are shut down so it is
released, and until it is, later callers are refused at once instead of waiting in turn.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from flask import g, has_app_context

from cds_service.database import DatabaseStalled

log = logging.getLogger(__name__)
T = TypeVar("T")
WORKERS = 4


class DatabaseGate:
    """Runs database work on worker threads and waits for it at most a given time."""

    def __init__(self, abort: Callable[[], object] = lambda: None, workers: int = WORKERS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cds-db")
        self._abort = abort
        self._lock = threading.Lock()
        self._stalled: set[Future[Any]] = set()
        self._background = False

    @property
    def stalled(self) -> bool:
        """True while work that outlived its caller's wait is still running."""
        with self._lock:
            return bool(self._stalled)

    def run(
        self, work: Callable[[], T], timeout: float, *, abort: bool = True, patient: bool = False
    ) -> T:
        """The result of `work`, or DatabaseStalled after `timeout` seconds (or at once).

        `abort=False` leaves the connections alone when the work overruns: for work that is
        slow by nature (a schema migration), which shutting them down would only undo.
        `patient=True` waits even while earlier work is overrunning: for callers that may
        wait their whole timeout (feedback), unlike a hook call.
        """
        if timeout <= 0 or (self.stalled and not patient):
            raise DatabaseStalled("the database wait of this call is spent")
        # A copy of the caller's context, so that the work sees the same Flask app.
        future = self._executor.submit(contextvars.copy_context().run, work)
        try:
            return future.result(timeout)
        except FutureTimeout:
            # Still queued behind stuck work: it never ran, so it need not run late either.
            if not future.cancel():
                self._stall(future, abort)
            raise DatabaseStalled(f"no answer from the database within {timeout:.2f} s") from None

    def run_in_background(self, work: Callable[[], object]) -> bool:
        """Start `work` without waiting (one at a time); False when it was not started."""
        with self._lock:
            if self._background or self._stalled:
                return False
            self._background = True
        future = self._executor.submit(contextvars.copy_context().run, work)
        future.add_done_callback(self._background_done)
        return True

    def _background_done(self, _: Future[Any]) -> None:
        with self._lock:
            self._background = False

    def _stall(self, future: Future[Any], abort: bool) -> None:
        with self._lock:
            self._stalled.add(future)
        future.add_done_callback(self._unstall)
        if not abort:
            log.warning("audit database work outlived the call's wait; it goes on meanwhile")
            return
        log.error("audit database did not answer in time; its connections are shut down")
        # A blocked read never returns on its own from a peer that stays silent: shutting the
        # connections down releases the worker, which then reconnects on its next use.
        with contextlib.suppress(Exception):
            self._abort()

    def _unstall(self, future: Future[Any]) -> None:
        with self._lock:
            self._stalled.discard(future)

    def shutdown(self) -> None:
        """Stop taking work (running work is left to finish on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def call_allowance(full: float) -> float:
    """Seconds of database wait left to this request (all of `full` outside a request)."""
    if not has_app_context():
        return full
    return full - g.get("cds_database_waited", 0.0)


def run_within_call(
    gate: DatabaseGate, work: Callable[[], T], full: float, *, abort: bool = True
) -> T:
    """Run `work` on the gate, charging the time waited to the request's database allowance."""
    started = time.monotonic()
    try:
        return gate.run(work, call_allowance(full), abort=abort)
    finally:
        if has_app_context():
            g.cds_database_waited = g.get("cds_database_waited", 0.0) + (time.monotonic() - started)

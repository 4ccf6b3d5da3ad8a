"""The service's one database: engines with bounded waits, the table metadata, the call's wait.

The audit tables (audit/models.py) and the JWT replay cache (security/replay.py) are defined on
the one `metadata` here and live in the same database; Alembic (audit/migrations) creates both.
Neither package imports the other for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")
metadata = MetaData()

# BIGINT on PostgreSQL, INTEGER (the rowid alias, hence autoincrementing) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Where the app keeps the function that runs database work within a hook call's wait.
_CALL_WAIT = "cds_database_wait"


class DatabaseStalled(TimeoutError):
    """The database did not answer within the caller's allowance."""


# A peer that stops acknowledging what it is sent (a network black hole) is dropped by the
# kernel after this long, and an idle pooled connection is probed, so that a worker never stays
# blocked on a dead connection. Fixed: they bound a worker thread, never a hook call.
_TCP_USER_TIMEOUT_MS = 10_000
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3}
_KEEPALIVE_COUNT = 3
# The live DBAPI connections of each engine, so that a stalled one can be shut down from outside.
_CONNECTIONS: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """How long the database may take: connecting, one statement, waiting for a lock."""

    # psycopg and libpq treat any connect_timeout under 2 s as 2 s.
    connect_seconds: int = 2
    statement_ms: int = 1000
    lock_ms: int = 500
    sqlite_busy_ms: int = 200


def make_engine(url: str, timeouts: DatabaseTimeouts | None = None) -> Engine:
    """An engine for CDS_DATABASE_URL with bounded waits; SQLite files get WAL and foreign keys.

    PostgreSQL gets connect_timeout, statement_timeout and lock_timeout (options given in the
    URL's own `options` win); SQLite gets a busy timeout.
    """
    timeouts = timeouts or DatabaseTimeouts()
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            parsed, pool_pre_ping=True, future=True, connect_args=_postgres_args(parsed, timeouts)
        )
        _track_connections(engine)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, future=True)
    if parsed.database and parsed.database != ":memory:":
        # Best effort: if the directory cannot be made, connecting fails later and is logged.
        with contextlib.suppress(OSError):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, future=True, connect_args={"timeout": timeouts.sqlite_busy_ms / 1000}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _postgres_args(parsed: URL, timeouts: DatabaseTimeouts) -> dict[str, Any]:
    given = parsed.query.get("options") or ""
    if not isinstance(given, str):  # the parameter repeated in the URL
        given = " ".join(given)
    options = (
        f"-c statement_timeout={timeouts.statement_ms} -c lock_timeout={timeouts.lock_ms} {given}"
    )
    return {
        "connect_timeout": timeouts.connect_seconds,
        "options": options.strip(),
        "tcp_user_timeout": _TCP_USER_TIMEOUT_MS,
        "keepalives_count": _KEEPALIVE_COUNT,
        **_KEEPALIVE,
    }


def _track_connections(engine: Engine) -> None:
    live: weakref.WeakSet[Any] = weakref.WeakSet()
    _CONNECTIONS[engine] = live

    @event.listens_for(engine, "connect")
    def _remember(connection: Any, _: Any) -> None:
        live.add(connection)


def abort_connections(engine: Engine) -> int:
    """Shut down the sockets of the engine's PostgreSQL connections; how many were shut.

    A thread blocked reading from one of them gets an error at once; the pool then replaces
    the connection (pre-ping) on its next use.
    """
    shut = 0
    for connection in list(_CONNECTIONS.get(engine, ())):
        try:
            duplicate = os.dup(connection.pgconn.socket)
        except Exception:  # noqa: S112 - already closed: nothing to release
            continue
        with socket.socket(fileno=duplicate) as sock, contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            shut += 1
    return shut


def set_call_wait(app: Flask, within_call: Callable[[Callable[[], Any]], Any]) -> None:
    """Make `within_call` the way database work of this app waits within a hook call."""
    app.extensions[_CALL_WAIT] = within_call


def database_call(work: Callable[[], T], fallback: Callable[[], T]) -> T:
    """`work` within the current hook call's database wait, else `fallback()` (no app: direct)."""
    if not has_app_context() or _CALL_WAIT not in current_app.extensions:
        return work()
    within_call: Callable[[Callable[[], T]], T] = current_app.extensions[_CALL_WAIT]
    try:
        return within_call(work)
    except DatabaseStalled:
        return fallback()

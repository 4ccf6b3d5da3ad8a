"""The `jti` replay cache: a token is accepted once, by whichever worker or host sees it first.

Rows live in the audit database (table jwt_replay, migration 0003), so every gunicorn worker and
every host behind a load balancer shares them. A row is kept until its token could no longer be
accepted anyway (exp + leeway); expired rows are deleted now and then by the workers themselves.
When the database cannot be reached, or does not answer within the hook call's database wait,
the cache falls back to this process's memory (and says so in the log): a replay to the same
worker is still caught, and the hook keeps answering.

A token is bound to the request it first came with (a keyed digest of method, path and body)
until that request has been answered. The same token with the very same request while the first
is still unanswered is a retry — a load balancer resending a call that an instance died while
answering — and is let through: the call is safe to repeat (one audit row per hookInstance and
order). Once the answer is made the binding is cleared (`answered`), so any later use of the
token, identical request or not, is a replay and is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.database import database_call, metadata

log = logging.getLogger(__name__)
MAX_ID_LENGTH = 255
MEMORY_LIMIT = 100_000

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("jti", String(MAX_ID_LENGTH), primary_key=True),
    Column("iss", String(MAX_ID_LENGTH), primary_key=True),
    # epoch seconds after which the token is refused for its age, so the row can go
    Column("expires_at", BigInteger, nullable=False),
    # keyed digest of the request the token first came with (migration 0006; NULL before)
    Column("request_digest", String(64), nullable=True),
    Index("ix_jwt_replay_expires_at", "expires_at"),
)


class ReplayCache:
    """Records (iss, jti) pairs; `first_use` is True for the first sighting and its retries."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        purge_interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.purge_interval_seconds = purge_interval_seconds
        self.clock = clock
        self._last_purge = float("-inf")
        self._memory: dict[tuple[str, str], tuple[int, str | None]] = {}
        self._lock = threading.Lock()

    def first_use(
        self, iss: str, jti: str, expires_at: int, request_digest: str | None = None
    ) -> bool:
        """Remember the pair until expires_at; False when it was seen with another request.

        `request_digest` identifies the request the token came with; seen again with the same
        digest it is a retry and True. Without a digest every second sighting is False.
        """
        now = int(self.clock())
        key = (iss, jti)
        with self._lock:
            seen = self._memory.get(key)
            if seen is not None and seen[0] >= now:
                return _is_retry(seen[1], request_digest)
        try:
            # Within the hook call's database wait (CDS_DATABASE_WAIT_SECONDS): a database that
            # does not answer in time costs the call that long at most, and memory decides.
            return database_call(
                lambda: self._record(iss, jti, expires_at, now, request_digest),
                fallback=lambda: self._stalled(key, expires_at, now, request_digest),
            )
        except SQLAlchemyError as exc:
            log.error(
                "jti replay cache: database unavailable (%s); using memory", type(exc).__name__
            )
            return self._remember(key, expires_at, now, request_digest)

    def _stalled(self, key: tuple[str, str], expires_at: int, now: int, digest: str | None) -> bool:
        log.error("jti replay cache: database did not answer in time; using memory")
        return self._remember(key, expires_at, now, digest)

    def _record(self, iss: str, jti: str, expires_at: int, now: int, digest: str | None) -> bool:
        engine = self._engine()
        self._maybe_purge(engine, now)
        row = {"jti": jti, "iss": iss, "expires_at": expires_at, "request_digest": digest}
        try:
            with engine.begin() as connection:
                connection.execute(insert(jwt_replay).values(**row))
            return True
        except IntegrityError:
            pass
        with engine.connect() as connection:
            stored = connection.execute(
                select(jwt_replay.c.request_digest, jwt_replay.c.expires_at).where(
                    jwt_replay.c.jti == jti, jwt_replay.c.iss == iss
                )
            ).first()
        if stored is not None and stored.expires_at >= now:
            return _is_retry(stored.request_digest, digest)
        # Seen before, unless the row is an expired leftover the purge has not reached yet.
        with engine.begin() as connection:
            gone = connection.execute(
                delete(jwt_replay).where(
                    jwt_replay.c.jti == jti,
                    jwt_replay.c.iss == iss,
                    jwt_replay.c.expires_at < now,
                )
            ).rowcount
        if not gone:
            return False
        try:
            with engine.begin() as connection:
                connection.execute(insert(jwt_replay).values(**row))
        except IntegrityError:
            return False  # another worker took it in between
        return True

    def answered(self, iss: str, jti: str) -> None:
        """The token's first request has its answer: no retry of it is accepted from now on."""
        key = (iss, jti)
        with self._lock:
            seen = self._memory.get(key)
            if seen is not None:
                self._memory[key] = (seen[0], None)

        def clear() -> None:
            with self._engine().begin() as connection:
                connection.execute(
                    update(jwt_replay)
                    .where(jwt_replay.c.jti == jti, jwt_replay.c.iss == iss)
                    .values(request_digest=None)
                )

        try:
            # Within what is left of the call's database wait; past it the binding stays until
            # the token expires, which allows a retry of this same request and nothing else.
            database_call(clear, fallback=lambda: None)
        except SQLAlchemyError as exc:
            log.error("jti replay cache: answer not recorded (%s)", type(exc).__name__)

    def _maybe_purge(self, engine: Engine, now: int) -> None:
        if now - self._last_purge < self.purge_interval_seconds:
            return
        self._last_purge = now
        with engine.begin() as connection:
            connection.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))

    def _remember(
        self, key: tuple[str, str], expires_at: int, now: int, digest: str | None
    ) -> bool:
        with self._lock:
            seen = self._memory.get(key)
            if seen is not None and seen[0] >= now:
                return _is_retry(seen[1], digest)
            if len(self._memory) >= MEMORY_LIMIT:
                self._memory = {k: v for k, v in self._memory.items() if v[0] >= now}
            if len(self._memory) >= MEMORY_LIMIT:
                return False  # full of live tokens: refuse rather than forget
            self._memory[key] = (expires_at, digest)
            return True


def _is_retry(first: str | None, now: str | None) -> bool:
    """The same request again (both digests known and equal)."""
    return first is not None and now is not None and first == now

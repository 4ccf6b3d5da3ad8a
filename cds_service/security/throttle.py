"""A bound on guessing: failed attempts counted per client, refused over a limit for a while."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

FAILURES_ALLOWED = 10
WINDOW_SECONDS = 60.0
CLIENTS_TRACKED = 10_000


class FailureThrottle:
    """Refuse a client that failed `limit` times within `window` seconds, until the oldest expires.

    Memory is bounded: at most `max_clients` addresses are tracked, the least recently seen
    forgotten first (an attacker spreading over more addresses than that gains little: each
    address still gets only `limit` guesses a window, and the token is long).
    """

    def __init__(
        self,
        limit: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        *,
        max_clients: int = CLIENTS_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may try again, or None when it may try now."""
        now = self._clock()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return None
            self._expire(failures, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window - now))

    def record_failure(self, client: str) -> None:
        """Count one failed attempt by `client`."""
        now = self._clock()
        with self._lock:
            failures = self._failures.pop(client, None) or deque()
            self._expire(failures, now)
            failures.append(now)
            while len(failures) > self.limit:
                failures.popleft()
            self._failures[client] = failures
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window:
            failures.popleft()

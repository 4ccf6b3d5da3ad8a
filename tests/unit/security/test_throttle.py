"""FailureThrottle: a client is refused after its limit of failures, for the rest of the window."""

from __future__ import annotations

from cds_service.security.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_is_refused_after_its_limit_until_the_oldest_failure_expires():
    clock = Clock()
    throttle = FailureThrottle(limit=3, window=60, clock=clock)
    for _ in range(2):
        throttle.record_failure("10.0.0.1")
        clock.now += 10
    assert throttle.retry_after("10.0.0.1") is None  # two failures: still allowed
    throttle.record_failure("10.0.0.1")  # the third, at t+20
    assert throttle.retry_after("10.0.0.1") == 40  # the first (t+0) expires at t+60
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    clock.now += 39.5
    assert throttle.retry_after("10.0.0.1") == 1
    clock.now += 0.5
    assert throttle.retry_after("10.0.0.1") is None


def test_memory_is_bounded_by_the_number_of_clients_tracked():
    throttle = FailureThrottle(limit=2, window=60, max_clients=100, clock=Clock())
    for n in range(1000):
        throttle.record_failure(f"client-{n}")
        throttle.record_failure(f"client-{n}")
    assert len(throttle._failures) == 100
    assert throttle.retry_after("client-999") is not None
    assert throttle.retry_after("client-0") is None  # forgotten, least recently seen


def test_a_client_keeps_at_most_limit_timestamps():
    throttle = FailureThrottle(limit=5, window=60, clock=Clock())
    for _ in range(10_000):
        throttle.record_failure("x")
    assert len(throttle._failures["x"]) == 5

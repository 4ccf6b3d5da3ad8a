"""The database gate: a caller waits at most its allowance, and a stalled database is not
waited for again until the stuck work is released."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from cds_service.audit.bounded import DatabaseGate, DatabaseStalled, run_within_call


def test_the_result_comes_back_when_the_work_is_quick():
    assert DatabaseGate().run(lambda: 42, timeout=1.0) == 42


def test_errors_of_the_work_reach_the_caller():
    def fail() -> None:
        raise ValueError("store error")

    with pytest.raises(ValueError, match="store error"):
        DatabaseGate().run(fail, timeout=1.0)


def test_a_stalled_database_costs_one_wait_then_none_until_released():
    release = threading.Event()
    aborted = []

    def abort() -> None:
        aborted.append(True)
        release.set()  # shutting the connections down releases the blocked worker

    gate = DatabaseGate(abort=abort)
    hang = threading.Event()
    started = time.monotonic()
    with pytest.raises(DatabaseStalled):
        gate.run(lambda: hang.wait(5) or release.wait(5), timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 0.5
    assert aborted == [True]
    hang.set()
    deadline = time.monotonic() + 2
    while gate.stalled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not gate.stalled
    assert gate.run(lambda: "again", timeout=1.0) == "again"


def test_while_stalled_callers_are_refused_at_once():
    gate = DatabaseGate()
    stuck = threading.Event()
    with pytest.raises(DatabaseStalled):
        gate.run(lambda: stuck.wait(5), timeout=0.05)
    started = time.monotonic()
    with pytest.raises(DatabaseStalled):
        gate.run(lambda: 1, timeout=1.0)
    assert time.monotonic() - started < 0.05
    stuck.set()


def test_one_request_has_one_allowance_for_all_its_database_work():
    gate = DatabaseGate()
    app = Flask(__name__)
    with app.test_request_context("/"):
        run_within_call(gate, lambda: time.sleep(0.15), full=0.25)
        started = time.monotonic()
        with pytest.raises(DatabaseStalled):
            run_within_call(gate, lambda: time.sleep(0.5), full=0.25)
        assert time.monotonic() - started < 0.2  # only what was left of the 0.25 s
    while gate.stalled:  # the overrunning work ends on its own
        time.sleep(0.01)
    with app.test_request_context("/"):  # the next request has its own
        assert run_within_call(gate, lambda: "fresh", full=0.25) == "fresh"


def test_a_patient_caller_waits_while_others_are_refused():
    gate = DatabaseGate()
    slow = threading.Event()
    with pytest.raises(DatabaseStalled):
        gate.run(lambda: slow.wait(0.3), timeout=0.05, abort=False)  # a slow migration
    assert gate.run(lambda: "feedback stored", timeout=2.0, patient=True) == "feedback stored"

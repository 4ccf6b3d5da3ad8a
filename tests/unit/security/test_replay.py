"""The jti replay cache in the audit database (table jwt_replay, migration 0003)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from cds_service.audit.store import AuditStore
from cds_service.security.replay import ReplayCache, jwt_replay


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(audit_url: str) -> Iterator[AuditStore]:
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    yield store
    store.engine.dispose()


def _rows(store: AuditStore) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(jwt_replay))


def test_a_jti_is_accepted_once_per_issuer(store):
    cache = ReplayCache(lambda: store.engine, clock=Clock())
    assert cache.first_use("https://a", "j1", 1_800_000_100)
    assert not cache.first_use("https://a", "j1", 1_800_000_100)
    assert cache.first_use("https://b", "j1", 1_800_000_100)  # another issuer's jti


def test_two_caches_on_one_database_share_what_they_saw(store):
    first, second = (ReplayCache(lambda: store.engine, clock=Clock()) for _ in range(2))
    assert first.first_use("https://a", "j1", 1_800_000_100)
    assert not second.first_use("https://a", "j1", 1_800_000_100)


def test_expired_rows_are_purged_and_their_jti_free_again(store):
    clock = Clock()
    cache = ReplayCache(lambda: store.engine, clock=clock, purge_interval_seconds=60)
    cache.first_use("https://a", "old", int(clock.now) + 10)
    cache.first_use("https://a", "live", int(clock.now) + 1000)
    clock.now += 30  # "old" expired, but no purge is due yet
    assert cache.first_use("https://a", "old", int(clock.now) + 10)  # leftover row replaced
    clock.now += 61
    cache.first_use("https://a", "trigger", int(clock.now) + 10)
    assert _rows(store) == 2  # "old" (expired again) purged; "live" and "trigger" kept


def test_database_down_falls_back_to_memory(tmp_path, caplog):
    from cds_service.audit.store import make_engine

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    engine = make_engine(f"sqlite:///{blocker / 'replay.db'}")  # cannot be opened
    cache = ReplayCache(lambda: engine, clock=Clock())
    assert cache.first_use("https://a", "j1", 1_800_000_100)
    assert not cache.first_use("https://a", "j1", 1_800_000_100)
    assert "using memory" in caplog.text
    engine.dispose()


def test_the_same_request_before_its_answer_is_a_retry_on_any_instance(store):
    """A balancer resending an unanswered call (its instance died) gets through; nothing else."""
    first, second = (ReplayCache(lambda: store.engine, clock=Clock()) for _ in range(2))
    assert first.first_use("https://a", "j1", 1_800_000_100, "digest-1")
    assert second.first_use("https://a", "j1", 1_800_000_100, "digest-1")  # the retry
    assert not second.first_use("https://a", "j1", 1_800_000_100, "digest-2")  # another body
    assert not second.first_use("https://a", "j1", 1_800_000_100)  # no digest: no retry
    first.answered("https://a", "j1")
    assert not second.first_use("https://a", "j1", 1_800_000_100, "digest-1")  # now a replay
    assert not first.first_use("https://a", "j1", 1_800_000_100, "digest-1")


def test_without_a_database_the_retry_rule_holds_in_memory(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = AuditStore.from_url(f"sqlite:///{blocker / 'audit.db'}")
    cache = ReplayCache(lambda: store.engine, clock=Clock())
    assert cache.first_use("https://a", "j1", 1_800_000_100, "d")
    assert cache.first_use("https://a", "j1", 1_800_000_100, "d")
    cache.answered("https://a", "j1")
    assert not cache.first_use("https://a", "j1", 1_800_000_100, "d")
    store.engine.dispose()

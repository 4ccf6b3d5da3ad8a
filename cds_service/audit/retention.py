"""Retention: audit rows past the retention period and expired jti rows, deleted in batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from cds_service.audit.models import evaluation, feedback, suggestion
from cds_service.security.replay import jwt_replay

# Small enough that each batch is a short transaction well inside the statement timeout and
# holds its locks briefly, so the service keeps writing while a purge runs.
BATCH_ROWS = 2000


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge removed (or, with dry_run, would remove)."""

    cutoff: datetime
    evaluations: int
    feedback: int
    suggestions: int
    replay_tokens: int
    dry_run: bool


def purge(
    engine: Engine,
    retention_days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> PurgeResult:
    """Delete evaluations recorded more than `retention_days` ago, with their feedback and
    suggestions, and the jti rows of expired tokens; counts only when `dry_run`."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    cutoff_ms = int(cutoff.timestamp() * 1000)
    old = evaluation.c.ts < cutoff_ms
    expired = jwt_replay.c.expires_at < int(now.timestamp())
    if dry_run:
        with engine.connect() as connection:
            old_ids = select(evaluation.c.id).where(old)
            counts = [
                connection.scalar(select(func.count()).select_from(evaluation).where(old)),
                connection.scalar(
                    select(func.count())
                    .select_from(feedback)
                    .where(feedback.c.evaluation_id.in_(old_ids))
                ),
                connection.scalar(
                    select(func.count())
                    .select_from(suggestion)
                    .where(suggestion.c.evaluation_id.in_(old_ids))
                ),
                connection.scalar(select(func.count()).select_from(jwt_replay).where(expired)),
            ]
        evaluations, feedbacks, suggestions, tokens = (int(n or 0) for n in counts)
        return PurgeResult(cutoff, evaluations, feedbacks, suggestions, tokens, dry_run=True)
    totals = [0, 0, 0]
    while True:
        with engine.begin() as connection:
            ids: list[int] = list(
                connection.scalars(
                    select(evaluation.c.id).where(old).order_by(evaluation.c.ts).limit(batch_rows)
                )
            )
            if not ids:
                break
            # Children first: not every SQLite connection enforces ON DELETE CASCADE.
            totals[1] += connection.execute(
                delete(feedback).where(feedback.c.evaluation_id.in_(ids))
            ).rowcount
            totals[2] += connection.execute(
                delete(suggestion).where(suggestion.c.evaluation_id.in_(ids))
            ).rowcount
            totals[0] += connection.execute(
                delete(evaluation).where(evaluation.c.id.in_(ids))
            ).rowcount
        if len(ids) < batch_rows:
            break
    with engine.begin() as connection:
        tokens = connection.execute(delete(jwt_replay).where(expired)).rowcount
    return PurgeResult(cutoff, totals[0], totals[1], totals[2], tokens, dry_run=False)

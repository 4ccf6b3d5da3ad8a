"""The request a token was first used for, so that a balancer's retry of it is not a replay.

Rows stored before have no digest (NULL): a second use of their jti is refused, as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add jwt_replay.request_digest (keyed digest of method, path and body; 64 hex digits)."""
    with op.batch_alter_table("jwt_replay") as batch:
        batch.add_column(sa.Column("request_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the digest; every second use of a jti is refused again."""
    with op.batch_alter_table("jwt_replay") as batch:
        batch.drop_column("request_digest")

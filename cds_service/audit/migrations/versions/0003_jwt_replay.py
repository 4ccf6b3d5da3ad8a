"""The jti replay cache of JWT authentication (cds_service/security/replay.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One row per accepted token (issuer, jti) until the token has expired."""
    op.create_table(
        "jwt_replay",
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("iss", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])


def downgrade() -> None:
    """Drop the replay cache."""
    op.drop_index("ix_jwt_replay_expires_at", table_name="jwt_replay")
    op.drop_table("jwt_replay")

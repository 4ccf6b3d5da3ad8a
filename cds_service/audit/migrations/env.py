"""Alembic environment: runs the packaged migrations on the connection AuditStore passes in."""

from __future__ import annotations

from alembic import context

import cds_service.audit.models  # puts the audit tables on metadata
import cds_service.security.replay  # noqa: F401 - puts jwt_replay (migration 0003) on metadata
from cds_service.database import metadata

config = context.config


def run() -> None:
    """Online migrations only: the store always hands over a live connection or engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()


run()

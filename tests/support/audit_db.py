"""A throw-away PostgreSQL schema per test, so audit test runs never collide."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema; the schema is dropped on exit.

    Fails (never skips) when the server cannot be reached: CI sets CDS_TEST_DATABASE_URL
    precisely so that these tests run.
    """
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    schema = f"cds_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # report any connection problem as a failure
        admin.dispose()
        pytest.fail(f"CDS_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

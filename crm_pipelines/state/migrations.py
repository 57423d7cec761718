"""Versioned, idempotent schema migrations: run at every engine start, each step applied once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state import schema


def _v1_api_usage(conn: Connection) -> None:
    for table in (schema.api_usage, schema.api_budget_lock):
        table.create(conn, checkfirst=True)


def _v2_mirror_and_cursors(conn: Connection) -> None:
    for table in (*schema.MIRROR_TABLES.values(), schema.cursors):
        table.create(conn, checkfirst=True)


STEPS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_api_usage),
    (2, _v2_mirror_and_cursors),
]


def current_version(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(schema.schema_version.c.version), 0))).scalar_one()


def _one_at_a_time(conn: Connection) -> None:
    """Processes starting at once migrate one after another (SQLite's BEGIN IMMEDIATE already does this).
    PostgreSQL's CREATE TABLE IF NOT EXISTS is no guard: two sessions can both find a table missing, and the
    second create fails on the catalog's unique index (seen when the bench's three lanes started together)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(74001)"))


def migrate(engine: Engine) -> int:
    """Bring the schema to the newest version; safe to run concurrently and repeatedly."""
    with engine.begin() as conn:
        _one_at_a_time(conn)
        schema.schema_version.create(conn, checkfirst=True)
    for version, step in STEPS:
        with engine.begin() as conn:
            _one_at_a_time(conn)
            if current_version(conn) >= version:
                continue
            step(conn)
            conn.execute(schema.schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
    with engine.connect() as conn:
        return current_version(conn)

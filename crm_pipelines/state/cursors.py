"""Watermarks per connection and object (incremental reads, deletion sweeps, change sensor positions)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.schema import cursors
from crm_pipelines.state.sql import upsert


def get_cursor(engine: Engine, connection: str, obj: str, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(cursors.c.value).where(
                cursors.c.connection == connection, cursors.c.object == obj, cursors.c.name == name
            )
        ).scalar()


def set_cursor(engine: Engine, connection: str, obj: str, name: str, value: str) -> None:
    with engine.begin() as conn:
        write_cursor(conn, connection, obj, name, value)


def write_cursor(conn: Connection, connection: str, obj: str, name: str, value: str) -> None:
    """``set_cursor`` inside the caller's transaction (a position moves with the work it stands for)."""
    upsert(
        conn,
        cursors,
        [{"connection": connection, "object": obj, "name": name, "value": value, "updated_at": datetime.now(UTC)}],
        key=["connection", "object", "name"],
    )

"""Dialect-aware statements both backends need (SQLite and PostgreSQL spell upserts alike, not identically)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    increment: Sequence[str] = (),
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: columns in ``increment`` are added to, the rest replaced."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    updates = {
        c: (table.c[c] + stmt.excluded[c]) if c in increment else stmt.excluded[c]
        for c in rows[0]
        if c not in key
    }
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=updates), list(rows))

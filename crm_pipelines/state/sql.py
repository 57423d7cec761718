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
    newer: str | None = None,
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: columns in ``increment`` are added to, the rest replaced.

    With ``newer``, a stored row is replaced only when the incoming value of that column is not older, so a
    slow run can never overwrite a fresher version written meanwhile by another.
    """
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    updates = {
        c: (table.c[c] + stmt.excluded[c]) if c in increment else stmt.excluded[c] for c in rows[0] if c not in key
    }
    where = None
    if newer is not None:
        where = sa.or_(table.c[newer].is_(None), stmt.excluded[newer].is_(None), table.c[newer] <= stmt.excluded[newer])
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=updates, where=where), list(rows))

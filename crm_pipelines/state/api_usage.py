"""The per-connection API call limit (OPS-2), counted durably so every process and restart shares it.

Reservations happen in one transaction that first touches the connection's lock row: on PostgreSQL that
row lock, on SQLite the write lock, serialises reservations of separate processes, so the rolling-24 h sum
read next is never stale. Calls are counted in one-minute buckets and a bucket counts as long as any part
of it lies in the window, which errs on the side of never exceeding the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.state.schema import api_budget_lock, api_usage
from crm_pipelines.state.sql import upsert

WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Reservation:
    granted: int
    minute: int
    used_before: int | None  # None when counted without a limit (nothing to compare with)
    retry_at: float | None  # epoch seconds when a refused call fits again; None when all were granted


def _first_minute(now: float) -> int:
    return int((now - WINDOW_S) // 60)


class SqlCallLedger:
    """Implements the connectors' ``CallLedger`` on the state database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reserve(self, connection: str, calls: int, limit: int | None, now: float) -> Reservation:
        """Count ``calls`` for ``connection`` within ``limit`` (None: no limit set, the calls are only counted,
        without taking the lock, so ``crm-pipelines usage`` and the assets' metadata show usage either way)."""
        minute = int(now // 60)
        since = _first_minute(now)
        if limit is None:
            with self.engine.begin() as conn:
                upsert(conn, api_usage, [{"connection": connection, "minute": minute, "calls": calls}],
                       key=["connection", "minute"], increment=["calls"])  # fmt: skip
            return Reservation(calls, minute, None, None)
        with self.engine.begin() as conn:
            upsert(
                conn,
                api_budget_lock,
                [{"connection": connection, "reservations": 1}],
                key=["connection"],
                increment=["reservations"],
            )
            used = self._used(conn, connection, since)
            granted = max(0, min(calls, limit - used))
            if granted:
                upsert(
                    conn,
                    api_usage,
                    [{"connection": connection, "minute": minute, "calls": granted}],
                    key=["connection", "minute"],
                    increment=["calls"],
                )
            retry_at = None
            if granted < calls:
                oldest = conn.execute(
                    sa.select(sa.func.min(api_usage.c.minute)).where(
                        api_usage.c.connection == connection, api_usage.c.minute >= since, api_usage.c.calls > 0
                    )
                ).scalar()
                retry_at = float(((oldest if oldest is not None else minute) + 1) * 60 + WINDOW_S)
            return Reservation(granted, minute, used, retry_at)

    def release(self, connection: str, calls: int, minute: int) -> None:
        """Give back calls reserved in ``minute`` and never made (a lease not used up)."""
        if calls <= 0:
            return
        with self.engine.begin() as conn:
            conn.execute(
                api_usage.update()
                .where(api_usage.c.connection == connection, api_usage.c.minute == minute)
                .values(
                    calls=sa.func.max(api_usage.c.calls - calls, 0)
                    if conn.dialect.name == "sqlite"
                    else sa.func.greatest(api_usage.c.calls - calls, 0)
                )
            )

    def used(self, connection: str, now: float) -> int:
        """Calls counted against ``connection`` in the 24 h before ``now``."""
        with self.engine.connect() as conn:
            return self._used(conn, connection, _first_minute(now))

    def usage(self, now: float) -> dict[str, int]:
        """Calls of the last 24 h for every connection that made any."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(api_usage.c.connection, sa.func.sum(api_usage.c.calls))
                .where(api_usage.c.minute >= _first_minute(now))
                .group_by(api_usage.c.connection)
            )
            return {c: int(n) for c, n in rows}

    def prune(self, now: float) -> int:
        """Drop buckets that left the window; returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(api_usage.delete().where(api_usage.c.minute < _first_minute(now))).rowcount

    @staticmethod
    def _used(conn: sa.Connection, connection: str, since: int) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(api_usage.c.calls), 0)).where(
                    api_usage.c.connection == connection, api_usage.c.minute >= since
                )
            ).scalar_one()
        )


def budget_metadata(engine: Engine, connection: str, limit: int | None) -> dict[str, int | str]:
    """OPS-2, for an asset's metadata: the calls counted against ``connection`` in the last 24 h, its limit and
    what is left, as numbers the UI plots over materializations (the extract, plan and write assets share these
    keys). Without a limit only a text says none is set; the calls are counted either way and shown by
    ``crm-pipelines usage``."""
    if limit is None:
        return {"api_call_limit_24h": f"none set: add connections.{connection}.api_call_limit to cap calls; "
                                      "`crm-pipelines usage` shows those counted (OPS-2)"}  # fmt: skip
    used = SqlCallLedger(engine).used(connection, time.time())
    return {"api_calls_used_24h": used, "api_calls_budget_24h": limit, "api_calls_left_24h": max(limit - used, 0)}

"""Baselines: per linked record and mapped field, the value last synced, when, and which write set it.

The merge (``sync/merge.py``) compares each side with its baseline to tell a user's change from the sync's
own write (CONF-5). A baseline is recorded only once the target confirmed the write (Invariant 2), in the
same transaction that marks the write done (the writes issue calls ``record``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.schema import baselines, write_outbox
from crm_pipelines.state.sql import insert_frame, rows_for_ids

KEY = ("kind", "hubspot_id", "other_crm", "field")
COLUMNS = (*KEY, "value", "synced_at", "write_id")
_CHUNK = 5_000  # ids per delete


def load(engine: Engine, kind: str, other_crm: str, hubspot_ids: Iterable[str]) -> pd.DataFrame:
    """The baselines of these linked records (every mapped field that has one) as a frame of ``COLUMNS`` and
    ``written_to``: the CRM the write that set it went to (the side that held something else until then)."""
    ids = list(dict.fromkeys(hubspot_ids))
    query = (sa.select(*[baselines.c[c] for c in COLUMNS], write_outbox.c.target_crm.label("written_to"))
             .select_from(baselines.outerjoin(write_outbox, write_outbox.c.key == baselines.c.write_id))
             .where(baselines.c.kind == kind, baselines.c.other_crm == other_crm))  # fmt: skip
    with engine.connect() as conn:
        frame = rows_for_ids(conn, query, baselines.c.hubspot_id, ids, [*COLUMNS, "written_to"])
    frame = frame.where(frame.notna(), None)  # a synced blank is None, as the merge takes it
    frame["synced_at"] = pd.to_datetime(frame["synced_at"], utc=True)
    return frame


def any_of(engine: Engine, kind: str) -> bool:
    """Whether any record of ``kind`` has a baseline (none before the first confirmed write)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.literal(1)).where(baselines.c.kind == kind).limit(1)).first() is not None


def record(conn: Connection, rows: pd.DataFrame, write_id: str | None = None, at: datetime | None = None) -> int:
    """Set the baselines of ``rows`` (``KEY`` + ``value``, and ``write_id`` when the rows come from several
    writes, else ``write_id``) to the value just written, in the caller's transaction; returns the baselines
    written."""
    if rows.empty:
        return 0
    at = at or datetime.now(UTC)
    rows = rows if "write_id" in rows else rows.assign(write_id=write_id)
    rows = rows[[*KEY, "value", "write_id"]].drop_duplicates(list(KEY), keep="last").astype(object)
    rows = rows.where(rows.notna(), None)
    # one IN list of HubSpot ids per (kind, CRM, field): a lookup by primary key each (a list of composite
    # keys in IN makes PostgreSQL scan the table)
    for (kind, crm, field), group in rows.groupby(["kind", "other_crm", "field"], sort=False):
        ids = group["hubspot_id"].tolist()
        for start in range(0, len(ids), _CHUNK):
            conn.execute(baselines.delete().where(
                baselines.c.kind == kind, baselines.c.other_crm == crm, baselines.c.field == field,
                baselines.c.hubspot_id.in_(ids[start : start + _CHUNK])))  # fmt: skip
    insert_frame(conn, baselines, rows.assign(synced_at=at))
    return len(rows)

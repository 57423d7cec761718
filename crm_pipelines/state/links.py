"""The link table and its history in the state database (what the rows mean: ``transform/links.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.schema import link_history, links
from crm_pipelines.state.sql import insert_frame, rows_for_ids

COLUMNS = ("kind", "hubspot_id", "identity_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type",
           "origin")


def load(engine: Engine | Connection, *, kind: str | None = None, hubspot_ids: Iterable[str] | None = None,
         origin: str | None = None) -> pd.DataFrame:
    """Links (all, or of one kind / origin / these HubSpot ids) as a frame of ``COLUMNS``, None for missing;
    given a connection, read in its transaction."""
    query = sa.select(*[links.c[c] for c in COLUMNS])
    if kind is not None:
        query = query.where(links.c.kind == kind)
    if origin is not None:  # inline, as the partial index ``ix_links_sync`` states it (SQLite matches text)
        query = query.where(links.c.origin == sa.literal(origin, literal_execute=True))
    ids = None if hubspot_ids is None else list(dict.fromkeys(hubspot_ids))
    if isinstance(engine, Connection):
        return rows_for_ids(engine, query, links.c.hubspot_id, ids, COLUMNS)
    with engine.connect() as conn:
        return rows_for_ids(conn, query, links.c.hubspot_id, ids, COLUMNS)


def history(engine: Engine, kind: str, hubspot_id: str) -> list[dict]:
    """Every recorded change of one link, oldest first."""
    query = (sa.select(link_history.c.at, link_history.c.change, link_history.c.before, link_history.c.after,
                       link_history.c.reason)
             .where(link_history.c.kind == kind, link_history.c.hubspot_id == hubspot_id)
             .order_by(link_history.c.row_id))  # fmt: skip
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def apply(conn: Connection, new: pd.DataFrame, changes: pd.DataFrame, at: datetime | None = None) -> int:
    """Write the changed links (``changes`` from ``transform.links.changes``; ``new`` holds the rows as they
    now are) and their history rows, in the caller's transaction. Returns the links written."""
    if changes.empty:
        return 0
    at = at or datetime.now(UTC)
    keys = list(zip(changes["kind"], changes["hubspot_id"], strict=True))
    first_time = changes["change"].eq("created").all() and not conn.execute(sa.select(links.c.kind).limit(1)).first()
    if not first_time:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            conn.execute(links.delete().where(sa.tuple_(links.c.kind, links.c.hubspot_id).in_(chunk)))
    rows = new.merge(pd.DataFrame(keys, columns=["kind", "hubspot_id"]), on=["kind", "hubspot_id"])
    rows = rows[list(COLUMNS)].astype(object).assign(created_at=at, updated_at=at)
    insert_frame(conn, links, rows)
    events = changes.assign(at=at)[["at", "kind", "hubspot_id", "change", "before", "after", "reason"]].copy()
    for col in ("before", "after"):
        events[col] = [None if v is None else orjson.dumps(v).decode() for v in events[col].tolist()]
    insert_frame(conn, link_history, events, ["before", "after"])
    return len(keys)


def deletions(engine: Engine, kind: str) -> pd.DataFrame:
    """Links that lost a record because it was deleted (or merged away) in its CRM, from the history:
    ``hubspot_id``, ``other_id`` (the other CRM's record of the link), ``deleted_crm``, ``at`` (DEL-4)."""
    query = (sa.select(link_history.c.at, link_history.c.hubspot_id, link_history.c.before, link_history.c.reason)
             .where(link_history.c.kind == kind,  # the partial index ``ix_link_history_deleted``'s condition, inline
                    link_history.c.reason.like(sa.literal("%deleted%", literal_execute=True))))  # fmt: skip
    rows = []
    with engine.connect() as conn:
        for at, hubspot_id, before, reason in conn.execute(query):
            before = orjson.loads(before) if isinstance(before, str | bytes) else (before or {})
            for crm in ("salesforce", "dynamics"):
                other = before.get(f"{crm}_id")
                if reason.startswith("deleted in hubspot") and other:
                    rows.append((hubspot_id, other, "hubspot", at))
                elif f"{crm} " in reason and "deleted" in reason and other:
                    rows.append((hubspot_id, other, crm, at))
    frame = pd.DataFrame(rows, columns=["hubspot_id", "other_id", "deleted_crm", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame

"""What ``unified/contact_rollups`` shows in the UI (issue 15): five contacts with their identity, email, deals
and revenue, and the table's totals.

The totals are kept, not recounted: a full update counts them from the frame it writes, an incremental one adds
the rows it writes and takes away the stored rows they replace (read by key, as many as the change), and the
result is stored with the update's other positions (``TOTALS``, in the same transaction), so a sync run never
reads the whole table for them (the sync loop's latency). The sample is the rows the run wrote (the highest revenue
first), or, when it wrote none, the first rows by key (an index range, ``LIMIT 5``)."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.defs.unified.markdown import markdown_table
from crm_pipelines.state import unified
from crm_pipelines.state.cursors import get_cursor, write_cursor

TOTALS = ("unified", "*", "rollup_totals")  # (connection, object, name) of the cursor holding the totals
SAMPLE = 5
FIGURES = ("contacts", "contacts_with_revenue", "deal_associations", "total_revenue")
_COLUMNS = ["contact_id", "num_associated_deals", "total_revenue"]


def totals_of(rows: pd.DataFrame) -> dict[str, float]:
    """``FIGURES`` of these ``contact_rollups`` rows: contacts (one row each has a deal), those with closed-won
    revenue, contact-deal associations counted, and the revenue summed."""
    if rows.empty:
        return dict.fromkeys(FIGURES, 0.0)
    revenue = pd.to_numeric(rows["total_revenue"], errors="coerce")
    return {"contacts": float(len(rows)), "contacts_with_revenue": float(revenue.fillna(0).ne(0).sum()),
            "deal_associations": float(pd.to_numeric(rows["num_associated_deals"], errors="coerce").fillna(0).sum()),
            "total_revenue": float(revenue.fillna(0).sum())}  # fmt: skip


def moved(totals: dict[str, float], added: pd.DataFrame, removed: pd.DataFrame) -> dict[str, float]:
    """``totals`` after ``removed`` rows gave way to ``added`` ones."""
    plus, minus = totals_of(added), totals_of(removed)
    return {k: totals.get(k, 0.0) + plus[k] - minus[k] for k in FIGURES}


def counted(engine: Engine) -> dict[str, float]:
    """The totals counted by the database: only where none are kept yet (a state database from before them)."""
    table = unified.column("contact_rollups", "contact_id").table
    revenue = sa.func.coalesce(table.c.total_revenue, 0)
    query = sa.select(sa.func.count(), sa.func.sum(sa.case((revenue != 0, 1), else_=0)),
                      sa.func.coalesce(sa.func.sum(table.c.num_associated_deals), 0), sa.func.sum(revenue))
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return dict(zip(FIGURES, (float(v or 0) for v in row), strict=True))


def kept(engine: Engine) -> dict[str, float] | None:
    value = get_cursor(engine, *TOTALS)
    return None if value is None else json.loads(value)


def keep(conn: Connection, totals: dict[str, float]) -> None:
    """Store ``totals`` in the caller's transaction (they move with the rows they count)."""
    write_cursor(conn, *TOTALS, json.dumps({k: round(v, 2) for k, v in totals.items()}))


def top(rows: pd.DataFrame, n: int = SAMPLE) -> pd.DataFrame:
    """The ``n`` rows with the highest revenue (then the most deals), for the sample."""
    if rows.empty:
        return rows.reindex(columns=_COLUMNS)
    order = rows.assign(_r=pd.to_numeric(rows["total_revenue"], errors="coerce").fillna(0),
                        _d=pd.to_numeric(rows["num_associated_deals"], errors="coerce").fillna(0))
    return order.sort_values(["_r", "_d", "contact_id"], ascending=[False, False, True]).head(n)[_COLUMNS].copy()


def first_rows(engine: Engine, n: int = SAMPLE) -> pd.DataFrame:
    """The first ``n`` rows by key: the primary key's index, never the whole table."""
    table = unified.column("contact_rollups", "contact_id").table
    query = sa.select(*(table.c[c] for c in _COLUMNS)).order_by(table.c.contact_id).limit(n)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=_COLUMNS)


def sample_markdown(engine: Engine, rows: pd.DataFrame, secrets: list[str] | None = None) -> str:
    """``rows`` with each contact's identity and email (HubSpot's member of it, looked up by key)."""
    if rows.empty:
        return "_none_"
    ids = rows["contact_id"].astype(str).tolist()
    crm, rid = unified.column("contact_members", "crm"), unified.column("contact_members", "id")
    members = unified.read(engine, "contact_members", sa.and_(crm == "hubspot", rid.in_(ids)),
                           columns=["id", "identity_id", "email"])
    shown = rows.assign(contact_id=rows["contact_id"].astype(str)).merge(
        members.astype({"id": str}).rename(columns={"id": "contact_id"}), on="contact_id", how="left")
    shown["total_revenue"] = pd.to_numeric(shown["total_revenue"], errors="coerce").map(
        lambda v: "" if pd.isna(v) else f"{v:,.2f}")
    cols = ["identity_id", "email", "contact_id", "num_associated_deals", "total_revenue"]
    return markdown_table(shown, cols, sample=len(shown), secrets=secrets or [],
                          headers=["identity", "email", "HubSpot contact", "associated deals", "total revenue"])


def totals_metadata(totals: dict[str, float]) -> dict[str, int | float]:
    """The totals as numbers (plotted by the UI over materializations)."""
    return {"rollup_contacts": int(totals["contacts"]), "rollup_contacts_with_revenue":
            int(totals["contacts_with_revenue"]), "rollup_deal_associations": int(totals["deal_associations"]),
            "rollup_total_revenue": round(float(totals["total_revenue"]), 2)}  # fmt: skip

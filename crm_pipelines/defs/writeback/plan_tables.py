"""What a plan asset shows in the UI besides its counts (issue 15): the writes per object and action as one
table, a few field updates of each object as ``record | field | old → new | rule``, and the API calls against the
24 h budget as numbers a user can plot (OPS-2, OPS-8).

Everything here reads the stored plan's counts (``plan_store.summary``) or a handful of its rows through the
primary key (a scope range per object, ``LIMIT``): never a whole frame, whatever the plan's size (issue 12)."""

from __future__ import annotations

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.defs.unified.markdown import markdown_table
from crm_pipelines.defs.writeback.plan_scope import KINDS
from crm_pipelines.defs.writeback.stored_plan import UNATTRIBUTED
from crm_pipelines.state import plan_store
from crm_pipelines.state.schema import plan_rows

PER_OBJECT = 5
# the actions of the counts table, in the order a user reads them (``stored_metadata``'s columns)
ACTIONS = ("create", "update", "associate", "delete", "deferred", "left out", "not deleted", "finding")
BLANK = "(blank)"


def counts_table(counts: pd.DataFrame, deferred: pd.DataFrame) -> pd.DataFrame:
    """Records per object (rows) and action (``ACTIONS``): the stored counts with the writes the 24 h budget
    defers (OPS-8) per object; objects with nothing are left out."""
    table = counts.set_index("object") if "object" in counts.columns else counts
    later = deferred["object"].astype(str).value_counts() if len(deferred) else pd.Series(dtype="int64")
    table = table.reindex(table.index.union(later.index))
    table["deferred"] = later.reindex(table.index)
    table = table.reindex(columns=list(ACTIONS)).fillna(0).astype(int).sort_index()
    table.index.name = "object"
    return table[table.sum(axis=1) > 0].reset_index()


def _sample_query(crm: str, low: str, high: str | None, n: int) -> sa.Select:
    """A plan's stored updates in the scopes from ``low`` up to ``high`` (excluded; None: only ``low``), by the
    primary key's order: an index range scan that stops after ``n`` rows."""
    query = sa.select(plan_rows.c.row).where(plan_rows.c.target_crm == crm, plan_rows.c.part == "updates")
    scope = plan_rows.c.scope
    query = query.where(scope == low) if high is None else query.where(scope >= low, scope < high)
    return query.order_by(plan_rows.c.scope, plan_rows.c.row_hash).limit(n)


def update_samples(engine: Engine, crm: str, per_object: int = PER_OBJECT) -> pd.DataFrame:
    """Up to ``per_object`` stored field updates of each object (contacts, companies, deals, then the rows stored
    under no identity): ``object``, ``record``, ``field``, ``old → new``, ``rule``."""
    # "<kind>:" up to "<kind>;": every scope of that kind (";" follows ":"; the column sorts bytewise)
    ranges = [(f"{kind}:", f"{kind};") for kind in KINDS] + [(UNATTRIBUTED, None), (plan_store.GLOBAL, None)]
    docs: list[dict] = []
    with engine.connect() as conn:
        for low, high in ranges:
            docs += [orjson.loads(v) if isinstance(v, str | bytes) else v
                     for (v,) in conn.execute(_sample_query(crm, low, high, per_object))]  # fmt: skip
    if not docs:
        return pd.DataFrame(columns=["object", "record", "field", "old → new", "rule"])
    rows = pd.DataFrame.from_records(docs).reindex(columns=["kind", "record_id", "field", "old", "new", "decided_by"])
    # a rule may store several rows of one object under other scopes: each object's first ``per_object``
    rows = rows.groupby("kind", sort=False, dropna=False).head(per_object)
    return pd.DataFrame({
        "object": rows["kind"].to_numpy(), "record": rows["record_id"].to_numpy(), "field": rows["field"].to_numpy(),
        "old → new": [f"{_shown(o)} → {_shown(n)}" for o, n in zip(rows["old"], rows["new"], strict=True)],
        "rule": rows["decided_by"].to_numpy(),
    })  # fmt: skip


def _shown(value: object) -> str:
    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))) or value == "":
        return BLANK
    return str(value)


def update_samples_markdown(samples: pd.DataFrame, secrets: list[str]) -> str:
    return markdown_table(samples, list(samples.columns), sample=len(samples), secrets=secrets)

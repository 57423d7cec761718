"""What the deletion plan reads from the state database (``sync/deletion_plan.py``): the link history's
deletions of contacts and companies, the deal links, and for the records they name whether the mirror has
them deleted (and when, and since when changed, and a Salesforce record's ``MasterRecordId``: a merge)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.settings import Settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror
from crm_pipelines.sync.deletion_plan import (
    STATUS_COLUMNS,
    DeletionSettings,
    deal_events,
    deletion_plan,
    history_events,
)
from crm_pipelines.sync.plan import DELETE_COLUMNS, LEFT_OUT_COLUMNS, concat, frame

# per kind of record and CRM: the mirror tables that hold it
TABLES = {
    "contact": {"hubspot": ("contacts",), "salesforce": ("Lead", "Contact"), "dynamics": ("contacts", "leads")},
    "company": {"hubspot": ("companies",), "salesforce": ("Account",), "dynamics": ("accounts",)},
    "deal": {"hubspot": ("deals",), "salesforce": ("Opportunity",), "dynamics": ("opportunities",)},
}
_CHUNK = 1_000


def _rows(engine: Engine, crm: str, obj: str, ids: list[str] | None) -> pd.DataFrame:
    """``STATUS_COLUMNS`` of these records (None: every record the mirror has deleted)."""
    table = mirror.table_for(crm, obj)
    query = sa.select(table.c.id, table.c.deleted, table.c.deleted_at, table.c.modified_at)
    with engine.connect() as conn:
        if ids is None:
            # ``WHERE deleted``, not ``IS TRUE``: PostgreSQL uses a partial index on the deleted rows only for the
            # former (Salesforce Opportunities have one, migration v9: 0.04 ms against 158 ms at 1M)
            rows = conn.execute(query.where(table.c.deleted)).all()
        else:
            rows = [r for start in range(0, len(ids), _CHUNK)
                    for r in conn.execute(query.where(table.c.id.in_(ids[start : start + _CHUNK])))]  # fmt: skip
    out = pd.DataFrame(rows, columns=["id", "deleted", "deleted_at", "modified_at"]).astype({"id": object})
    out = out.assign(crm=crm, type=obj, merged_into=None)
    for c in ("deleted_at", "modified_at"):
        out[c] = pd.to_datetime(out[c], utc=True)
    dead = out.loc[out["deleted"].astype(bool), "id"].astype(str).tolist()
    if crm == "salesforce" and dead:  # a merge deletes the losers: they name the survivor
        master = mirror.read_records(engine, crm, obj, ids=dead, columns=["MasterRecordId"])
        if "MasterRecordId" in master:
            out["merged_into"] = out["id"].astype(str).map(master.set_index(master["id"].astype(str))["MasterRecordId"])
    return out[list(STATUS_COLUMNS)]


def record_status(engine: Engine, kind: str, ids: dict[str, list[str]] | None) -> pd.DataFrame:
    """``STATUS_COLUMNS`` of these records of ``kind`` per CRM (None: every record the mirrors have deleted)."""
    parts = [_rows(engine, crm, obj, None if ids is None else ids.get(crm, []))
             for crm, objects in TABLES[kind].items() for obj in objects
             if ids is None or ids.get(crm)]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(STATUS_COLUMNS))


def deletion_events(engine: Engine, kind: str) -> pd.DataFrame:
    """The standing deletions of ``kind`` (``deletion_plan.EVENT_COLUMNS``)."""
    if kind == "deal":
        links = link_store.load(engine, kind="deal")
        if links.empty:
            return deal_events(links, pd.DataFrame(columns=list(STATUS_COLUMNS)))
        dead = record_status(engine, "deal", None)  # few: only the records deleted
        hit = pd.Series(False, index=links.index)
        for crm in ("hubspot", "salesforce", "dynamics"):
            hit |= links[f"{crm}_id"].astype(str).isin(set(dead.loc[dead["crm"] == crm, "id"].astype(str)))
        links = links[hit.to_numpy(dtype=bool)]
        ids = {crm: links[f"{crm}_id"].dropna().astype(str).tolist() for crm in ("hubspot", "salesforce", "dynamics")}
        return deal_events(links, record_status(engine, "deal", ids))
    history = link_store.deletions(engine, kind)
    if history.empty:
        return history_events(kind, history, pd.DataFrame(columns=list(STATUS_COLUMNS)), pd.DataFrame())
    # the other id's CRM is not in the history row when HubSpot's record was the one deleted: look it up in each
    other = history["other_id"].astype(str).unique().tolist()
    ids = {"hubspot": history["hubspot_id"].astype(str).unique().tolist(), "salesforce": other, "dynamics": other}
    now = link_store.load(engine, kind=kind, hubspot_ids=ids["hubspot"])
    return history_events(kind, history, record_status(engine, kind, ids), now)


def deletion_settings(settings: Settings) -> dict[str, DeletionSettings]:
    """Per enabled connection: which objects it syncs in which direction, and the DEL-2 switches."""
    out = {}
    for crm in ("salesforce", "dynamics"):
        if not getattr(settings.connections, crm).enabled:
            continue
        conn = getattr(settings.sync, crm)
        objects = {o: (s.enabled, s.direction) for o, s in (("contact", conn.contacts), ("company", conn.companies),
                                                             ("deal", conn.deals))}  # fmt: skip
        out[crm] = DeletionSettings(objects=objects,
                                    delete_when_lead_deleted=getattr(conn, "delete_contact_when_lead_deleted", False),
                                    delete_when_contact_deleted=getattr(conn, "delete_contact_when_contact_deleted",
                                                                        False))  # fmt: skip
    return out


@dataclass
class DeletionPlan:
    """The deletions part of every target's plan."""

    deletes: dict[str, pd.DataFrame]  # target -> records to delete there (plan.DELETE_COLUMNS)
    left_out: pd.DataFrame  # deletions not carried, and why (plan.LEFT_OUT_COLUMNS)
    companies: pd.DataFrame  # the companies' standing deletions, for DEL-4 in the company creates

    def deletes_for(self, target: str) -> pd.DataFrame:
        return frame(DELETE_COLUMNS, self.deletes.get(target))

    def left_out_for(self, target: str) -> pd.DataFrame:
        return self.left_out[self.left_out["target_crm"] == target]


def deletion_plan_of(engine: Engine, settings: Settings) -> DeletionPlan:
    """Deletes per target CRM (DEL-1..3) from the state database as it is."""
    events = {kind: deletion_events(engine, kind) for kind in ("contact", "company", "deal")}
    deletes, left_out = deletion_plan(concat(events["contact"].columns, events.values()), deletion_settings(settings))
    return DeletionPlan(deletes, concat(LEFT_OUT_COLUMNS, [left_out]), events["company"])

"""What the task plan reads (``sync/task_plan.py``, OPS-4): HubSpot's live tasks and their associations from
the mirror, the contact, deal and task links."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.defs.writeback.deletion_inputs import record_status
from crm_pipelines.settings import Settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, sql
from crm_pipelines.state.schema import links as link_table
from crm_pipelines.sync.create_values import empty as empty_values
from crm_pipelines.sync.plan import CREATE_COLUMNS, LEFT_OUT_COLUMNS, frame
from crm_pipelines.sync.task_plan import FIELDS, task_plan


@dataclass
class TaskPlan:
    creates: pd.DataFrame  # Salesforce Tasks to create (plan.CREATE_COLUMNS)
    values: pd.DataFrame  # their values (create_values.CREATE_VALUE_COLUMNS)
    left_out: pd.DataFrame  # tasks not placed yet, and why

    @classmethod
    def empty(cls) -> TaskPlan:
        return cls(frame(CREATE_COLUMNS), empty_values(), frame(LEFT_OUT_COLUMNS))


_TASK_RANGE = ("tasks:", "tasks;")  # every task association's mirror id, and no other's
_PREFIXES = 200  # task id prefixes per lookup (SQLite: a compound SELECT of at most 500)
_MANY = 5_000  # past this many tasks, their associations are read with all the others' and picked out here


def _parsed(ids: list[str]) -> pd.DataFrame:
    """Task association mirror ids (``tasks:<id>:<type>:<id>:<type id>``, ``extract/hubspot.py``) as
    ``from_type``, ``from_id``, ``to_type``, ``to_id``."""
    parts = [i.split(":")[:4] for i in ids]
    out = pd.DataFrame([p for p in parts if len(p) == 4], columns=["from_type", "from_id", "to_type", "to_id"],
                       dtype=object)
    return out.drop_duplicates(ignore_index=True)


def task_associations(engine: Engine, task_ids: set[str] | None = None) -> pd.DataFrame:
    """HubSpot's live task associations, of these tasks or all: one id range holds them all (no read of every
    association), and one narrower range a task's."""
    table = mirror.table_for("hubspot", "associations")
    live = table.c.deleted.is_(False)
    with engine.connect() as conn:
        if task_ids is None or len(task_ids) > _MANY:
            query = sa.select(table.c.id).where(table.c.id >= _TASK_RANGE[0], table.c.id < _TASK_RANGE[1], live)
            ids = [r[0] for r in conn.execute(query)]
        else:
            prefixes = [f"tasks:{t}:" for t in sorted(task_ids)]
            ids = [i for start in range(0, len(prefixes), _PREFIXES)
                   for i in sql.ids_in_ranges(conn, table, prefixes[start : start + _PREFIXES], live)]  # fmt: skip
    out = _parsed(ids)
    return out if task_ids is None else out[out["from_id"].isin(task_ids)].reset_index(drop=True)


def _tasks_of(engine: Engine, records: set[str]) -> set[str]:
    """The HubSpot tasks associated with these HubSpot records (contacts, deals). PostgreSQL picks them out of
    the task associations' id range itself; SQLite's range is read and filtered here."""
    table = mirror.table_for("hubspot", "associations")
    where = [table.c.id >= _TASK_RANGE[0], table.c.id < _TASK_RANGE[1], table.c.deleted.is_(False)]
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            found = _parsed([r[0] for r in conn.execute(sa.select(table.c.id).where(*where))])
            return set(found.loc[found["to_id"].isin(records), "from_id"])
        to_id = sa.func.split_part(table.c.id, ":", 4)
        wanted = sorted(records)
        return {str(r[0]).split(":")[1] for start in range(0, len(wanted), 10_000)
                for r in conn.execute(sa.select(table.c.id).where(*where, to_id.in_(wanted[start : start + 10_000])))}


def task_marks(engine: Engine) -> dict[str, str | None]:
    """Where the task plan's inputs stand: when the mirror last stamped a HubSpot task, an association and a
    Salesforce Opportunity (a deleted or restored one takes or gives back its deal's tasks; each the newest
    stamp of its table, which its index finds). With the link history (the links it places tasks on), what
    ``tasks_to_replan`` compares the next plan's inputs with."""
    marks = {"tasks": mirror.last_extracted(engine, "hubspot", "tasks"),
             "associations": mirror.last_extracted(engine, "hubspot", "associations"),
             "opportunities": mirror.last_extracted(engine, "salesforce", "Opportunity")}  # fmt: skip
    return {name: None if at is None else pd.Timestamp(at).isoformat() for name, at in marks.items()}


def tasks_to_replan(engine: Engine, before: dict[str, str | None], records: set[str], task_links: set[str],
                    ) -> set[str]:
    """The HubSpot tasks whose plan may differ from the one made at ``before`` (``task_marks`` then): the tasks
    and task associations the mirror stamped since, the tasks whose link changed (``task_links``), and the tasks
    associated with ``records`` (HubSpot contacts and deals whose link changed) or with a deal whose Opportunity
    was stamped since (deleted, restored or edited: which, the mirror no longer says)."""
    def since(crm: str, obj: str, mark: str | None) -> pd.DataFrame:
        after = None if mark is None else pd.Timestamp(mark).to_pydatetime()
        return mirror.read_records(engine, crm, obj, after=after, columns=[])

    out = set(since("hubspot", "tasks", before.get("tasks"))["id"].astype(str)) | set(task_links)
    table = mirror.table_for("hubspot", "associations")
    query = sa.select(table.c.id).where(table.c.id >= _TASK_RANGE[0], table.c.id < _TASK_RANGE[1])
    if before.get("associations") is not None:
        query = query.where(table.c.extracted_at > pd.Timestamp(before["associations"]).to_pydatetime())
    with engine.connect() as conn:
        out |= {str(r[0]).split(":")[1] for r in conn.execute(query)}
    # one connection at a time (SQLite)
    opportunities = since("salesforce", "Opportunity", before.get("opportunities"))["id"].astype(str).tolist()
    if opportunities:
        with engine.connect() as conn:
            deals = sa.select(link_table.c.hubspot_id, link_table.c.salesforce_id).where(link_table.c.kind == "deal")
            found = sql.rows_for_ids(conn, deals, link_table.c.salesforce_id, opportunities,
                                     ["hubspot_id", "salesforce_id"])
            records = records | set(found["hubspot_id"].astype(str))
    return out | _tasks_of(engine, records) if records else out


def task_plan_of(engine: Engine, settings: Settings, task_ids: set[str] | None = None,
                 contact_links: pd.DataFrame | None = None) -> TaskPlan:
    """OPS-4 from the state database as it is (nothing when the Salesforce connection is off), of these HubSpot
    tasks or all; ``contact_links``: every contact link, when the caller has read them already (a full plan's
    merges have: reading again the tens of thousands its tasks reach took longer than all of them, 2.2 s
    against 1.8 s at a million people)."""
    if not settings.connections.salesforce.enabled or (task_ids is not None and not task_ids):
        return TaskPlan.empty()
    rules = settings.sync.salesforce.tasks
    tasks = mirror.read_records(engine, "hubspot", "tasks", columns=[f[0] for f in FIELDS],
                                ids=None if task_ids is None else sorted(task_ids))
    tasks = tasks[~tasks["deleted"].astype(bool)]
    assoc = task_associations(engine, task_ids)
    related = assoc["to_id"].astype(str).unique().tolist()
    contacts = (link_store.load(engine, kind="contact", hubspot_ids=related) if contact_links is None
                else contact_links[contact_links["hubspot_id"].isin(set(related))].reset_index(drop=True))
    deals = link_store.load(engine, kind="deal", hubspot_ids=related)
    # a deal link outlives its Opportunity's deletion (DEL-3): no task goes on a deleted record
    status = record_status(engine, "deal", {"salesforce": deals["salesforce_id"].dropna().astype(str).tolist()})
    gone = set(status.loc[status["deleted"].astype(bool), "id"].astype(str))
    deals = deals[~deals["salesforce_id"].astype(str).isin(gone)]
    done = link_store.load(engine, kind="task", hubspot_ids=None if task_ids is None else sorted(task_ids))
    creates, values, left = task_plan(tasks, assoc, contacts, deals, done, rules.enabled, rules.direction)
    return TaskPlan(creates, values, left)

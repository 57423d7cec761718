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
_FEW = 200  # up to this many tasks, their associations are read by id prefix, not the whole range


def task_associations(engine: Engine, task_ids: set[str] | None = None) -> pd.DataFrame:
    """HubSpot's live task associations (of these tasks, or all): their mirror ids are
    ``tasks:<id>:<type>:<id>:<type id>`` (``extract/hubspot.py``), so one id range holds them all (no read of
    every association), and one narrower range a task's."""
    table = mirror.table_for("hubspot", "associations")
    live = table.c.deleted.is_(False)
    if task_ids is not None and len(task_ids) <= _FEW:
        ranges = [sa.and_(table.c.id >= f"tasks:{t}:", table.c.id < f"tasks:{t};") for t in sorted(task_ids)]
        where = [sa.or_(*ranges), live] if ranges else [sa.false()]
    else:
        where = [table.c.id >= _TASK_RANGE[0], table.c.id < _TASK_RANGE[1], live]
    with engine.connect() as conn:
        ids = pd.Series([r[0] for r in conn.execute(sa.select(table.c.id).where(*where))], dtype=object)
    parts = ids.astype(str).str.split(":", expand=True) if len(ids) else pd.DataFrame(columns=range(4))
    out = pd.DataFrame({"from_type": parts[0], "from_id": parts[1], "to_type": parts[2], "to_id": parts[3]}
                       ).dropna().drop_duplicates()  # fmt: skip
    return out if task_ids is None else out[out["from_id"].isin(task_ids)]


def task_marks(engine: Engine) -> dict[str, str | None]:
    """Where the task plan's inputs stand: when the mirror last stamped a HubSpot task, a task association and
    a Salesforce Opportunity (a deleted or restored one takes or gives back its deal's tasks). With the link
    history (the links it places tasks on), what ``tasks_to_replan`` compares the next plan's inputs with."""
    table = mirror.table_for("hubspot", "associations")
    query = sa.select(sa.func.max(table.c.extracted_at)).where(table.c.id >= _TASK_RANGE[0],
                                                                table.c.id < _TASK_RANGE[1])
    with engine.connect() as conn:
        associations = conn.execute(query).scalar_one()
    marks = {"tasks": mirror.last_extracted(engine, "hubspot", "tasks"), "associations": associations,
             "opportunities": mirror.last_extracted(engine, "salesforce", "Opportunity")}
    return {name: None if at is None else pd.Timestamp(at).isoformat() for name, at in marks.items()}


def tasks_to_replan(engine: Engine, before: dict[str, str | None], records: set[str], task_links: set[str],
                    ) -> tuple[set[str], pd.DataFrame | None]:
    """The HubSpot tasks whose plan may differ from the one made at ``before`` (``task_marks`` then): the tasks
    and task associations the mirror stamped since, the tasks whose link changed (``task_links``), and the tasks
    associated with ``records`` (HubSpot contacts and deals whose link changed) or with a deal whose Opportunity
    was stamped since (deleted, restored or edited: which, the mirror no longer says). Also the task
    associations when they were read whole (the task plan then does not read them again)."""
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
    if not records:
        return out, None
    associations = task_associations(engine)
    out |= set(associations.loc[associations["to_id"].astype(str).isin(records), "from_id"].astype(str))
    return out, associations


def task_plan_of(engine: Engine, settings: Settings, associations: pd.DataFrame | None = None,
                 task_ids: set[str] | None = None) -> TaskPlan:
    """OPS-4 from the state database as it is (nothing when the Salesforce connection is off), of these HubSpot
    tasks or all; ``associations``: ``task_associations`` (whole) when already read."""
    if not settings.connections.salesforce.enabled or (task_ids is not None and not task_ids):
        return TaskPlan.empty()
    rules = settings.sync.salesforce.tasks
    tasks = mirror.read_records(engine, "hubspot", "tasks", columns=[f[0] for f in FIELDS],
                                ids=None if task_ids is None else sorted(task_ids))
    tasks = tasks[~tasks["deleted"].astype(bool)]
    assoc = task_associations(engine, task_ids) if associations is None else associations
    if task_ids is not None:
        assoc = assoc[assoc["from_id"].astype(str).isin(task_ids)]
    related = assoc["to_id"].astype(str).unique().tolist()
    contacts = link_store.load(engine, kind="contact", hubspot_ids=related)
    deals = link_store.load(engine, kind="deal", hubspot_ids=related)
    # a deal link outlives its Opportunity's deletion (DEL-3): no task goes on a deleted record
    status = record_status(engine, "deal", {"salesforce": deals["salesforce_id"].dropna().astype(str).tolist()})
    gone = set(status.loc[status["deleted"].astype(bool), "id"].astype(str))
    deals = deals[~deals["salesforce_id"].astype(str).isin(gone)]
    done = link_store.load(engine, kind="task", hubspot_ids=None if task_ids is None else sorted(task_ids))
    creates, values, left = task_plan(tasks, assoc, contacts, deals, done, rules.enabled, rules.direction)
    return TaskPlan(creates, values, left)

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
from crm_pipelines.state import mirror
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


def task_associations(engine: Engine) -> pd.DataFrame:
    """HubSpot's live task associations: their mirror ids are ``tasks:<id>:<type>:<id>:<type id>``
    (``extract/hubspot.py``), so one id range holds them all (no read of every association)."""
    table = mirror.table_for("hubspot", "associations")
    query = sa.select(table.c.id).where(table.c.id >= "tasks:", table.c.id < "tasks;", table.c.deleted.is_(False))
    with engine.connect() as conn:
        ids = pd.Series([r[0] for r in conn.execute(query)], dtype=object)
    parts = ids.astype(str).str.split(":", expand=True) if len(ids) else pd.DataFrame(columns=range(4))
    return pd.DataFrame({"from_type": parts[0], "from_id": parts[1], "to_type": parts[2], "to_id": parts[3]}
                        ).dropna().drop_duplicates()  # fmt: skip


def task_marks(engine: Engine) -> str:
    """When the mirror last took a row the task plan reads: HubSpot's tasks and their associations, Salesforce's
    Tasks; and Salesforce's deleted Opportunities (a deleted one takes no task: an edited one moves no task,
    and Opportunities are edited all day). With the link history (the links it places tasks on), what says
    whether the task plan can differ from the last one."""
    table = mirror.table_for("hubspot", "associations")
    query = sa.select(sa.func.max(table.c.extracted_at)).where(table.c.id >= "tasks:", table.c.id < "tasks;")
    opportunities = mirror.table_for("salesforce", "Opportunity")
    deleted = sa.select(sa.func.count(), sa.func.max(opportunities.c.deleted_at)).where(opportunities.c.deleted)
    with engine.connect() as conn:
        associations = conn.execute(query).scalar_one()
        gone = tuple(conn.execute(deleted).one())
    marks = [mirror.last_extracted(engine, crm, obj) for crm, obj in (("hubspot", "tasks"), ("salesforce", "Task"))]
    return "|".join(str(m) for m in (*marks, associations, gone))


def task_related_ids(associations: pd.DataFrame) -> set[str]:
    """The HubSpot records (contacts, deals) HubSpot's live tasks are associated with (``task_associations``):
    a link of one of them can move a task."""
    return set(associations["to_id"].astype(str))


def task_plan_of(engine: Engine, settings: Settings, associations: pd.DataFrame | None = None) -> TaskPlan:
    """OPS-4 from the state database as it is (nothing when the Salesforce connection is off);
    ``associations``: ``task_associations`` when already read."""
    if not settings.connections.salesforce.enabled:
        return TaskPlan.empty()
    rules = settings.sync.salesforce.tasks
    tasks = mirror.read_records(engine, "hubspot", "tasks", columns=[f[0] for f in FIELDS])
    tasks = tasks[~tasks["deleted"].astype(bool)]
    assoc = task_associations(engine) if associations is None else associations
    related = assoc["to_id"].astype(str).unique().tolist()
    contacts = link_store.load(engine, kind="contact", hubspot_ids=related)
    deals = link_store.load(engine, kind="deal", hubspot_ids=related)
    # a deal link outlives its Opportunity's deletion (DEL-3): no task goes on a deleted record
    status = record_status(engine, "deal", {"salesforce": deals["salesforce_id"].dropna().astype(str).tolist()})
    gone = set(status.loc[status["deleted"].astype(bool), "id"].astype(str))
    deals = deals[~deals["salesforce_id"].astype(str).isin(gone)]
    done = link_store.load(engine, kind="task")
    creates, values, left = task_plan(tasks, assoc, contacts, deals, done, rules.enabled, rules.direction)
    return TaskPlan(creates, values, left)

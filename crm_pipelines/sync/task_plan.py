"""OPS-4: HubSpot tasks appear as Salesforce Tasks on the related record.

From the HubSpot tasks mirror and its task -> contact / deal associations:

- A live HubSpot task becomes a Salesforce Task whose ``WhoId`` is the Lead or Contact linked to one of its
  contacts and whose ``WhatId`` is the Opportunity linked to one of its deals (the lowest HubSpot id first,
  so the same record every run). Salesforce refuses a ``WhatId`` beside a Lead's ``WhoId``: with a deal
  linked, such a task goes on the Opportunity alone.
- A task none of whose records is in Salesforce yet is left out with that reason; it is planned on a later
  run, once its contact or deal is there.
- A task already in Salesforce (its link, kind ``task``, written by the sync) is not created again.
- The connection's task switch and direction (``sync.salesforce.tasks``, CON-1): only HubSpot -> Salesforce.

Values (``create_values.CREATE_VALUE_COLUMNS``): Subject, Description, ActivityDate (the task's due time's
day), Status, Priority and Type in Salesforce's picklist values.
"""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.create_values import CREATE_VALUE_COLUMNS
from crm_pipelines.sync.create_values import empty as empty_values
from crm_pipelines.sync.plan import CREATE_COLUMNS, LEFT_OUT_COLUMNS, frame

STATUS = {"NOT_STARTED": "Not Started", "IN_PROGRESS": "In Progress", "COMPLETED": "Completed",
          "WAITING": "Waiting on someone else", "DEFERRED": "Deferred"}  # fmt: skip
PRIORITY = {"HIGH": "High", "MEDIUM": "Normal", "LOW": "Low", "NONE": "Normal"}
TYPE = {"CALL": "Call", "EMAIL": "Email", "TODO": "Other"}
# HubSpot property -> Salesforce Task field, kind, value map
FIELDS = (("hs_task_subject", "Subject", "text", None), ("hs_task_body", "Description", "text", None),
          ("hs_timestamp", "ActivityDate", "date", None), ("hs_task_status", "Status", "text", STATUS),
          ("hs_task_priority", "Priority", "text", PRIORITY), ("hs_task_type", "Type", "text", TYPE))  # fmt: skip
RULE = "OPS-4 a HubSpot task as a Salesforce Task"


def _first(pairs: pd.DataFrame, links: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per task, the first (by HubSpot id) of its associated records linked in Salesforce, with ``columns``."""
    linked = pairs.merge(links.dropna(subset=["salesforce_id"]), left_on="to_id", right_on="hubspot_id")
    return linked.sort_values(["task_id", "to_id"]).drop_duplicates("task_id")[["task_id", *columns]]


def task_plan(tasks: pd.DataFrame, associations: pd.DataFrame, contact_links: pd.DataFrame,
              deal_links: pd.DataFrame, task_links: pd.DataFrame, enabled: bool = True,
              direction: Direction = Direction.TWO_WAY) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``tasks``: live HubSpot tasks (``id`` + properties); ``associations``: HubSpot's (``from_type``,
    ``from_id``, ``to_type``, ``to_id``); ``contact_links`` (``hubspot_id``, ``salesforce_id``,
    ``salesforce_type``), ``deal_links`` (``hubspot_id``, ``salesforce_id``); ``task_links``: ``hubspot_id`` of
    tasks already in Salesforce. Returns the Salesforce creates (``CREATE_COLUMNS``), their values
    (``CREATE_VALUE_COLUMNS``) and the tasks left out (``LEFT_OUT_COLUMNS``)."""
    if not enabled or direction == Direction.OTHER_TO_HUBSPOT or tasks.empty:
        return frame(CREATE_COLUMNS), empty_values(), frame(LEFT_OUT_COLUMNS)
    a = associations.astype({"from_id": str, "to_id": str})
    fwd = a[a["from_type"] == "tasks"].rename(columns={"from_id": "task_id"})[["task_id", "to_type", "to_id"]]
    b = a[a["to_type"] == "tasks"]
    back = pd.DataFrame({"task_id": b["to_id"], "to_type": b["from_type"], "to_id": b["from_id"]})
    pairs = pd.concat([fwd, back], ignore_index=True).drop_duplicates()
    ids = tasks["id"].astype(str)
    todo = tasks.assign(id=ids)[~ids.isin(set(task_links["hubspot_id"].astype(str)))].reset_index(drop=True)
    who = _first(pairs[pairs["to_type"] == "contacts"], contact_links.astype({"hubspot_id": str}),
                 ["salesforce_id", "salesforce_type"]).rename(columns={"salesforce_id": "WhoId"})
    what = _first(pairs[pairs["to_type"] == "deals"], deal_links.astype({"hubspot_id": str}),
                  ["salesforce_id"]).rename(columns={"salesforce_id": "WhatId"})
    rel = todo[["id"]].merge(who, left_on="id", right_on="task_id", how="left").drop(columns="task_id")
    rel = rel.merge(what, left_on="id", right_on="task_id", how="left").drop(columns="task_id")
    lead_with_deal = (rel["salesforce_type"].eq("Lead") & rel["WhatId"].notna()).to_numpy(dtype=bool)
    rel.loc[lead_with_deal, "WhoId"] = None
    placed = (rel["WhoId"].notna() | rel["WhatId"].notna()).to_numpy(dtype=bool)
    left = frame(LEFT_OUT_COLUMNS, todo[~placed].assign(
        object="task", source_crm="hubspot", source_id=todo["id"], target_crm="salesforce",
        reason="OPS-4 none of its contacts or deals is in Salesforce yet"))  # fmt: skip
    made = todo[placed].reset_index(drop=True)
    subject = made["hs_task_subject"] if "hs_task_subject" in made else pd.Series([None] * len(made))
    creates = frame(CREATE_COLUMNS, pd.DataFrame({
        "object": "task", "source_crm": "hubspot", "source_id": made["id"].to_numpy(), "object_type": "Task",
        "detail": subject.astype(object).to_numpy()}))  # fmt: skip
    parts = []
    for prop, target, kind, mapped in FIELDS:
        if prop not in made:
            continue
        raw = made[prop].astype("string").str.strip()
        value = raw.str.upper().map(mapped) if mapped else raw
        parts.append(pd.DataFrame({"source_id": made["id"].to_numpy(), "field": prop, "target_field": target,
                                   "kind": kind, "value": value.astype(object).to_numpy()}))  # fmt: skip
    rel = rel[placed].reset_index(drop=True)
    for column in ("WhoId", "WhatId"):
        parts.append(pd.DataFrame({"source_id": rel["id"].to_numpy(), "field": column, "target_field": column,
                                   "kind": "text", "value": rel[column].astype(object).to_numpy()}))  # fmt: skip
    values = pd.concat(parts, ignore_index=True) if parts else empty_values()
    values = values[values["value"].notna().to_numpy(dtype=bool) & (values["value"].astype(str) != "")]
    values = values.assign(object="task", source_crm="hubspot", target_object="Task", rule=RULE)
    return creates, frame(CREATE_VALUE_COLUMNS, values.sort_values(["source_id"], kind="stable")), left


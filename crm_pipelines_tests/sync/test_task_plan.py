"""OPS-4: HubSpot tasks planned as Salesforce Tasks on the related record (``sync/task_plan.py``)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.task_plan import task_plan
from crm_pipelines.sync.value_forms import value_forms

TASKS = pd.DataFrame({
    "id": ["t1", "t2", "t3", "t4", "t5"],
    "hs_task_subject": ["Follow-up call", "Send proposal", "Book a demo", "Send contract", "Old one"],
    "hs_task_body": ["Ask about pricing", None, None, None, None],
    "hs_task_status": ["NOT_STARTED", "COMPLETED", "NOT_STARTED", "NOT_STARTED", "COMPLETED"],
    "hs_task_priority": ["HIGH", "MEDIUM", "LOW", "HIGH", "HIGH"],
    "hs_task_type": ["CALL", "EMAIL", "TODO", "CALL", "CALL"],
    "hs_timestamp": ["2026-12-03T15:00:00Z", "2026-12-04T09:00:00Z", None, None, None],
})  # fmt: skip
ASSOC = pd.DataFrame([
    ("tasks", "t1", "contacts", "h1"), ("tasks", "t1", "deals", "d1"),   # a Contact and an Opportunity
    ("contacts", "h2", "tasks", "t2"),                                  # a Lead (association read backwards)
    ("tasks", "t3", "contacts", "h9"),                                  # a contact not in Salesforce
    ("tasks", "t4", "contacts", "h2"), ("tasks", "t4", "deals", "d1"),   # a Lead and an Opportunity
    ("tasks", "t5", "contacts", "h1"),                                  # already in Salesforce
], columns=["from_type", "from_id", "to_type", "to_id"])  # fmt: skip
CONTACTS = pd.DataFrame({"hubspot_id": ["h1", "h2"], "salesforce_id": ["0031", "00Q2"],
                         "salesforce_type": ["Contact", "Lead"]})
DEALS = pd.DataFrame({"hubspot_id": ["d1"], "salesforce_id": ["0061"]})
DONE = pd.DataFrame({"hubspot_id": ["t5"]})


def _values(values: pd.DataFrame) -> dict:
    return {(r.source_id, r.target_field): r.value for r in values.itertuples()}


def test_ops4_hubspot_tasks_are_planned_as_salesforce_tasks_on_the_related_record():
    creates, values, left = task_plan(TASKS, ASSOC, CONTACTS, DEALS, DONE)
    assert creates["source_id"].tolist() == ["t1", "t2", "t4"]
    assert set(creates["object"]) == {"task"} and set(creates["object_type"]) == {"Task"}
    got = _values(values)
    assert got[("t1", "WhoId")] == "0031" and got[("t1", "WhatId")] == "0061"
    assert got[("t1", "Subject")] == "Follow-up call" and got[("t1", "Description")] == "Ask about pricing"
    assert (got[("t1", "Status")], got[("t1", "Priority")], got[("t1", "Type")]) == ("Not Started", "High", "Call")
    assert got[("t2", "WhoId")] == "00Q2" and ("t2", "WhatId") not in got  # a Lead: no WhatId
    assert got[("t2", "Status")] == "Completed" and got[("t2", "Priority")] == "Normal"
    # Salesforce takes no WhatId beside a Lead: with a deal linked, the task goes on the Opportunity
    assert got[("t4", "WhatId")] == "0061" and ("t4", "WhoId") not in got
    why = left.set_index("source_id")["reason"]
    assert why["t3"] == "OPS-4 none of its contacts or deals is in Salesforce yet"
    assert "t5" not in set(creates["source_id"]) and "t5" not in why  # the sync already made it
    # the due date as Salesforce's date (OPS-9)
    formed, found = value_forms(values, "salesforce")
    assert formed.set_index(["source_id", "target_field"]).loc[("t1", "ActivityDate"), "api_value"] == "2026-12-03"
    assert found.empty


def test_ops4_tasks_only_hubspot_to_salesforce_and_under_the_switch_con1():
    for kw in ({"enabled": False}, {"direction": Direction.OTHER_TO_HUBSPOT}):
        creates, values, left = task_plan(TASKS, ASSOC, CONTACTS, DEALS, DONE, **kw)
        assert creates.empty and values.empty and left.empty

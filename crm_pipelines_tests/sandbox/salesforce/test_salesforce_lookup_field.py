"""Issue 13: the Salesforce sandbox's org has the custom external-id field ``External_Id__c`` on Account,
Opportunity and Task (and Lead and Contact), as its admin would have made it for crm_pipelines: a created
record is found again by it after a crash, and `crm-pipelines check` reads it from describe."""

from __future__ import annotations

import uuid

import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.salesforce.conftest import rest, sdk

FIELD = "External_Id__c"


@pytest.mark.parametrize("sobject", ["Account", "Opportunity", "Task", "Lead", "Contact"])
def test_describe_shows_a_unique_external_id_text_field(salesforce: RunningSandbox, sobject: str) -> None:
    """Issue 13: the field as Setup makes it (Text(255), Unique, External ID): custom, externalId, idLookup."""
    with rest(salesforce) as client:
        fields = {f["name"]: f for f in client.get(f"/sobjects/{sobject}/describe").json()["fields"]}
    f = fields[FIELD]
    assert (f["type"], f["length"], f["custom"], f["externalId"], f["unique"], f["idLookup"]) == (
        "string", 255, True, True, True, True)
    assert f["createable"] and f["updateable"] and f["filterable"]


def test_a_task_is_found_again_by_its_external_id(salesforce: RunningSandbox) -> None:
    """Issue 13 (OPS-4): a Task created with an external id is found by SOQL `IN` on it and upserted by it;
    a second Task with the same value is refused (the field is unique)."""
    key = f"k-{uuid.uuid4().hex}"
    sf = sdk(salesforce)
    made = sf.Task.create({"Subject": "Keyed", FIELD: key})
    assert made["success"]
    found = sf.query(f"SELECT Id, {FIELD} FROM Task WHERE {FIELD} IN ('{key}', 'other')")["records"]
    assert [(r["Id"], r[FIELD]) for r in found] == [(made["id"], key)]
    assert sf.Task.upsert(f"{FIELD}/{key}", {"Subject": "Keyed again"}) == 200  # updated, not created
    assert sf.Task.get(made["id"])["Subject"] == "Keyed again"
    with rest(salesforce) as client:
        twice = client.post("/sobjects/Task", json={"Subject": "Twin", FIELD: key})
    assert twice.status_code == 400 and twice.json()[0]["errorCode"] == "DUPLICATE_VALUE"

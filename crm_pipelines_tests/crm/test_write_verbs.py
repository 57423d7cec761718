"""One set of verbs and one outcome type for writes to every CRM (issue 11; OPS-6): the writes stage calls
``create``, ``update``, ``upsert`` and ``delete`` the same way on each client, and reads the same
``WriteOutcome`` back, one per input, a refused record next to written ones."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from crm_pipelines.crm.outcomes import WriteOutcome, status
from crm_pipelines_tests.crm.dynamics.conftest import client as dynamics_client
from crm_pipelines_tests.crm.dynamics.conftest import dynamics_big, dynamics_live  # noqa: F401 (fixtures)
from crm_pipelines_tests.crm.salesforce.conftest import client as salesforce_client
from crm_pipelines_tests.crm.salesforce.conftest import sf, sf_server  # noqa: F401 (fixtures)
from crm_pipelines_tests.crm.test_hubspot_connector import client as hubspot_client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

# per CRM: fixture, client factory, object, email field, name field, a field whose bad value the API refuses,
# the key an upsert matches on
CASES = {
    "hubspot": ("hubspot_live", hubspot_client, "contacts", "email", "lastname", ("lifecyclestage", "bogus"),
                "email"),
    "salesforce": ("sf", salesforce_client, "Lead", "Email", "LastName", ("NoSuchField__c", 1), "External_Id__c"),
    "dynamics": ("dynamics_live", dynamics_client, "contacts", "emailaddress1", "lastname", ("nosuchcolumn", 1),
                 "emailaddress1"),
}  # fmt: skip


@pytest.mark.parametrize("crm", list(CASES))
def test_the_same_verbs_write_to_every_crm_with_one_outcome_per_record(
    crm: str, request: pytest.FixtureRequest
) -> None:
    fixture, open_client, obj, email, name, (bad_field, bad_value), key = CASES[crm]
    sandbox: RunningSandbox = request.getfixturevalue(fixture)
    tag = uuid.uuid4().hex[:8]
    extra: dict[str, Any] = {"Company": "Verbs Inc"} if crm == "salesforce" else {}
    records = [{email: f"v{i}.{tag}@example.com", name: f"Verb {i}", **extra} for i in range(3)]
    records[1][bad_field] = bad_value
    upsert_key = f"x-{tag}" if key == "External_Id__c" else f"up.{tag}@example.com"

    async def run() -> tuple[list[WriteOutcome], ...]:
        async with open_client(sandbox) as c:
            created = await c.create(obj, records)
            first = created[0].id
            updated = await c.update(obj, [(first, {name: "Renamed"})])
            upserted = await c.upsert(obj, key, [{key: upsert_key, name: "Upserted", **extra}])
            again = await c.upsert(obj, key, [{key: upsert_key, name: "Upserted again", **extra}])
            deleted = await c.delete(obj, [first])
            return created, updated, upserted, again, deleted

    created, updated, upserted, again, deleted = asyncio.run(run())
    for outcomes in (created, updated, upserted, again, deleted):
        assert all(type(o) is WriteOutcome for o in outcomes)
    assert [o.index for o in created] == [0, 1, 2]
    assert [status(o, "create") for o in created] == ["created", "failed", "created"]
    assert created[1].code and created[1].message  # the API's own code and text for the refused record
    assert [status(o, "update") for o in updated] == ["updated"]
    assert status(upserted[0], "upsert") == "created" and status(again[0], "upsert") == "updated"
    assert upserted[0].id == again[0].id
    assert [status(o, "delete") for o in deleted] == ["deleted"]

"""$batch writes through the connector: one change set per record, per-record outcomes (OPS-6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from crm_pipelines.crm.dynamics.odata import where
from crm_pipelines.crm.dynamics.values import Lookup
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def test_a_bad_record_among_good_ones_gets_its_own_outcome(dynamics_live: RunningSandbox) -> None:
    """Issue 5 + OPS-6: create/update/upsert/delete through $batch; one bad record never fails the others, each
    input gets its outcome with the API's code, and a thousand records cost one call."""
    tag = uuid.uuid4().hex[:8]
    creates = [
        {"record": {"lastname": f"Batch {i}", "firstname": tag, "emailaddress1": f"b{i}.{tag}@example.com"}}
        for i in range(1200)
    ]
    creates[7]["record"]["nosuchcolumn"] = 1  # unknown property: 400
    creates[1100]["record"]["statuscode"] = 99  # not an option of statuscode: 400
    creates[3]["record"]["jobtitle"] = "j" * 130  # too long: cut to 100 and reported (OPS-9)
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter) as dyn:
            created = await dyn.write("create", "contacts", creates)
            batch_calls = meter.count(endpoint="POST /$batch")
            good = [o for o in created if o.ok]
            missing = str(uuid.uuid4())
            updated = await dyn.write(
                "update",
                "contacts",
                [
                    {"id": good[0].id, "record": {"jobtitle": "CTO"}},
                    {"id": missing, "record": {"jobtitle": "Ghost"}},  # update never creates
                    {"id": good[1].id, "record": {"statecode": 1, "statuscode": 1}},  # 1 is Active, not Inactive
                    {"id": good[2].id, "record": {"lastname": "Updated"}},
                ],
            )
            upserted = await dyn.write(
                "upsert",
                "contacts",
                [
                    {"key": {"emailaddress1": f"b0.{tag}@example.com"}, "record": {"jobtitle": "By key"}},
                    {
                        "key": {"emailaddress1": f"new.{tag}@example.com"},
                        "record": {"lastname": "New", "firstname": tag},
                    },
                    {"id": good[3].id, "record": {"telephone1": "+1 555 0100"}},
                ],
            )
            deleted = await dyn.write("delete", "contacts", [{"id": good[4].id}, {"id": missing}])
            rows = {
                r["contactid"]: r
                async for p in dyn.iter_pages(
                    "contacts", ["contactid", "jobtitle", "lastname", "statecode"], filter=where("firstname", "eq", tag)
                )
                for r in p
            }
            return created, batch_calls, updated, upserted, deleted, rows, missing

    created, batch_calls, updated, upserted, deleted, rows, missing = asyncio.run(run())
    assert [o.index for o in created] == list(range(1200))
    assert [o.index for o in created if not o.ok] == [7, 1100]
    assert created[7].code == "0x80060888" and "nosuchcolumn" in created[7].message
    assert created[1100].code == "0x80044331"
    assert created[3].ok and created[3].truncated == ("jobtitle",)
    assert batch_calls == 2  # 1,000 change sets in the first call, 200 in the second
    good = [o for o in created if o.ok]
    assert all(o.new and o.id for o in good) and len({o.id for o in good}) == 1198
    assert [o.ok for o in updated] == [True, False, False, True]
    assert updated[1].code == "0x80040217" and updated[2].code == "0x80048408"
    assert rows[good[2].id]["lastname"] == "Updated"  # (good[0]'s update is overwritten by the upsert below)
    assert rows[good[3].id]["jobtitle"] == "j" * 100
    assert rows[good[1].id]["statecode"] == 0  # the failed change set left the row as it was
    assert [(o.ok, o.new) for o in upserted] == [(True, False), (True, True), (True, False)]
    assert upserted[0].id == good[0].id and rows[good[0].id]["jobtitle"] == "By key"
    assert upserted[1].id in rows and upserted[2].id == good[3].id
    assert [o.ok for o in deleted] == [True, True] and deleted[1].code == "0x80040217"  # already gone: done
    assert good[4].id not in rows and missing not in rows
    assert len(rows) == 1198 - 1 + 1


def test_typed_values_are_written_in_dataverse_form(dynamics_live: RunningSandbox) -> None:
    """SPEC OPS-9: money, date-only, lookups and option sets written from Python values read back as sent."""

    async def run():
        async with client(dynamics_live) as dyn:
            account = (await dyn.write("create", "accounts", [{"record": {"name": "Values Ltd", "revenue": 10.5}}]))[0]
            opportunity = (
                await dyn.write(
                    "create",
                    "opportunities",
                    [
                        {
                            "record": {
                                "name": "Typed",
                                "estimatedvalue": Decimal("1250.75"),
                                "salesstage": 2,
                                "estimatedclosedate": dt.date(2025, 3, 31),
                                "parentaccountid": Lookup("accounts", account.id),
                            }
                        }
                    ],
                )
            )[0]
            row = [
                r
                async for p in dyn.iter_pages(
                    "opportunities",
                    ["estimatedvalue", "estimatedclosedate", "salesstage", "_parentaccountid_value"],
                    filter=where("opportunityid", "eq", uuid.UUID(opportunity.id)),
                )
                for r in p
            ]
            return account, opportunity, row

    account, opportunity, row = asyncio.run(run())
    assert account.ok and opportunity.ok, (account, opportunity)
    assert row[0]["estimatedvalue"] == 1250.75 and row[0]["estimatedclosedate"] == "2025-03-31"
    assert row[0]["salesstage"] == 2 and row[0]["_parentaccountid_value"] == account.id

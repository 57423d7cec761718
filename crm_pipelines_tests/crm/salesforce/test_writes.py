"""Issue 5 (Salesforce) writes: sObject Collections in chunks of 200 with allOrNone=false and per-record
outcomes (OPS-6); values in the form Salesforce demands through one conversion module (OPS-9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.describe import FieldInfo
from crm_pipelines.crm.salesforce.soql import soql
from crm_pipelines.crm.salesforce.values import cell_in, parse_datetime, to_salesforce, value_out
from crm_pipelines_tests.crm.salesforce.conftest import client, direct_query
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

CREATE_PATH = "POST /services/data/vXX.X/composite/sobjects"


def test_collections_give_one_outcome_per_record_in_input_order(sf: RunningSandbox) -> None:
    """Issue 5 / OPS-6: 250 creates go out as 200 + 50 with allOrNone=false; the bad records among good ones
    come back with the API's code and message, the good ones are written; update, upsert and delete alike."""
    tag = f"w-{uuid.uuid4().hex[:8]}"
    leads = [{"LastName": f"Good {i}", "Company": tag, "Email": f"g{i}.{tag}@example.com"} for i in range(250)]
    leads[3] = {"Company": tag}  # no LastName
    leads[120]["Email"] = "not an email"
    leads[210]["Status"] = "Maybe"  # restricted picklist
    leads[230]["LastName"] = float("nan")  # no Salesforce form: refused before any call
    meter = Meter()

    async def run():
        async with client(sf, meter) as sfc:
            created = await sfc.save("create", "Lead", leads)
            good = [o.id for o in created if o.ok]
            updates = [{"Id": i, "Title": "Buyer"} for i in good[:4]]
            updates.insert(2, {"Id": good[4], "Email": "still not an email"})
            updated = await sfc.save("update", "Lead", updates)
            key = f"ext-{tag}"
            upserted = await sfc.save(
                "upsert",
                "Lead",
                [{"External_Id__c": key, "LastName": "Ext", "Company": tag}, {"External_Id__c": key + "-2"}],
                external_id_field="External_Id__c",
            )
            again = await sfc.save(
                "upsert", "Lead", [{"External_Id__c": key, "Title": "CEO"}], external_id_field="External_Id__c"
            )
            deleted = await sfc.save("delete", "Lead", [{"Id": good[0]}, {"Id": good[1]}])
            twice = await sfc.save("delete", "Lead", [{"Id": good[1]}, {"Id": good[2]}])
            return created, updated, upserted, again, deleted, twice

    created, updated, upserted, again, deleted, twice = asyncio.run(run())
    assert meter.count(endpoint=CREATE_PATH) == 2  # 249 sendable records: 200 + 49
    assert [o.index for o in created] == list(range(250))
    assert [o.index for o in created if not o.ok] == [3, 120, 210, 230]
    assert (created[3].code, created[3].fields) == ("REQUIRED_FIELD_MISSING", ("LastName",))
    assert created[120].code == "INVALID_EMAIL_ADDRESS" and "not an email" in (created[120].message or "")
    assert created[210].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert created[230].code == "INVALID_VALUE" and created[230].id is None
    written = {o.id for o in created if o.ok}
    assert len(written) == 246
    stored = direct_query(sf, soql("SELECT Id FROM Lead WHERE Company = {tag}", tag=tag))
    gone = {o.id for o in deleted} | {o.id for o in twice if o.ok}
    assert {r["Id"] for r in stored} == (written - gone) | {upserted[0].id} and len(gone) == 3
    assert [o.ok for o in updated] == [True, True, False, True, True]
    assert updated[2].code == "INVALID_EMAIL_ADDRESS" and updated[2].id is not None
    assert upserted[0].ok and upserted[0].created is True
    assert not upserted[1].ok and upserted[1].code == "REQUIRED_FIELD_MISSING"
    assert again[0].ok and again[0].created is False and again[0].id == upserted[0].id
    assert all(o.ok for o in deleted)
    assert [o.ok for o in twice] == [False, True] and twice[0].code == "ENTITY_IS_DELETED"


def test_values_go_out_in_the_form_salesforce_demands() -> None:
    """OPS-9: dates YYYY-MM-DD, datetimes in UTC, numbers as numbers, naive datetimes refused; text longer
    than the field's length is cut *and reported*, never silently; CSV cells come back typed."""
    fields = {
        "CloseDate": FieldInfo("CloseDate", "date"),
        "Due__c": FieldInfo("Due__c", "datetime"),
        "Name": FieldInfo("Name", "string", length=10),
        "Amount": FieldInfo("Amount", "currency"),
        "NumberOfEmployees": FieldInfo("NumberOfEmployees", "int"),
    }
    late_evening = dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    converted = to_salesforce(
        fields,
        {
            "CloseDate": late_evening,  # 01:30 UTC on 1 April
            "Due__c": late_evening,
            "Name": "A name that is far too long",
            "Amount": Decimal("1250.50"),
            "NumberOfEmployees": 12.0,
            "Description": dt.date(2024, 1, 2),
        },
    )
    assert converted.body == {
        "CloseDate": "2024-04-01",
        "Due__c": "2024-04-01T01:30:00.000Z",
        "Name": "A name tha",
        "Amount": 1250.5,
        "NumberOfEmployees": 12,
        "Description": "2024-01-02",
    }
    assert [(t.field, t.length, t.max_length) for t in converted.truncated] == [("Name", 27, 10)]
    whole = to_salesforce(fields, {"Name": "A name that is far too long"}, truncate=False)
    assert whole.body["Name"] == "A name that is far too long" and whole.truncated  # reported either way
    assert value_out(dt.date(2024, 5, 6), fields["Due__c"]) == "2024-05-06T00:00:00.000Z"
    with pytest.raises(ValueError):
        value_out(dt.datetime(2024, 1, 1), fields["Due__c"])
    with pytest.raises(ValueError):
        value_out(float("inf"))
    assert parse_datetime("2013-05-20T20:49:32.000+0000") == dt.datetime(2013, 5, 20, 20, 49, 32, tzinfo=dt.UTC)
    assert cell_in("true", FieldInfo("X", "boolean")) is True and cell_in("", FieldInfo("X", "string")) is None
    assert cell_in("7", FieldInfo("X", "int")) == 7 and cell_in("7.5", FieldInfo("X", "currency")) == 7.5


def test_converted_values_are_stored_as_sent(sf: RunningSandbox) -> None:
    """OPS-9 against the sandbox: a datetime for a date field lands as its UTC date; an over-long Name is cut
    and reported on the outcome; with truncate=False the record fails alone with STRING_TOO_LONG."""
    tag = f"v-{uuid.uuid4().hex[:8]}"
    evening = dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    opportunity = {"Name": tag + "x" * 200, "StageName": "Prospecting", "CloseDate": evening, "Amount": Decimal("99.5")}

    async def run():
        async with client(sf) as sfc:
            cut = await sfc.save("create", "Opportunity", [opportunity])
            whole = await sfc.save("create", "Opportunity", [opportunity, {**opportunity, "Name": tag}], truncate=False)
            return cut, whole

    cut, whole = asyncio.run(run())
    assert cut[0].ok and [(t.field, t.max_length) for t in cut[0].truncated] == [("Name", 120)]
    [stored] = direct_query(sf, soql("SELECT Name, CloseDate, Amount FROM Opportunity WHERE Id = {i}", i=cut[0].id))
    assert stored["Name"] == (tag + "x" * 200)[:120] and stored["CloseDate"] == "2024-04-01"
    assert stored["Amount"] == 99.5
    assert not whole[0].ok and whole[0].code == "STRING_TOO_LONG" and whole[0].truncated
    assert whole[1].ok

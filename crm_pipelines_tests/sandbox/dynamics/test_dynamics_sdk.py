"""The Dynamics sandbox driven by Microsoft's own ``PowerPlatform-Dataverse-Client`` over HTTPS.

Issue 4 "Done when": create, read, update, delete and query with filter and paging through the SDK, with a
credential that asks the sandbox's token endpoint. FACTS §n cites shared/specs/dynamics/FACTS.md.
"""

from __future__ import annotations

import uuid

import pytest
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.errors import HttpError
from PowerPlatform.Dataverse.models.upsert import UpsertItem

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:8]}@sdk-test.example.com"


def test_sdk_uses_the_token_endpoint_and_https(sdk: DataverseClient, dynamics: RunningSandbox) -> None:
    """FACTS §A1: the SDK asks the credential for `<org url>/.default` before every request."""
    info = sdk.tables.get("contact")
    assert info is not None
    assert info["entity_set_name"] == "contacts" and info["primary_id_attribute"] == "contactid"
    assert info["primary_name_attribute"] == "fullname"
    assert sdk.auth.credential.calls >= 1
    assert sdk.tables.get("contacts") is None  # a plural is not a logical name (FACTS §A4)


def test_paging_every_contact_matches_the_generator(pristine_dynamics: RunningSandbox,
                                                    sdk: DataverseClient) -> None:
    """FACTS §A8: list_pages sends Prefer odata.maxpagesize and follows the absolute @odata.nextLink."""
    with pristine_dynamics.admin() as admin:
        expected = admin.get("/manifest").json()["crms"]["dynamics"]
        stats = admin.get("/stats").json()
    pages = list(sdk.records.list_pages("contact", select=["fullname", "emailaddress1", "modifiedon"], page_size=25))
    records = [r for page in pages for r in page]
    assert len(pages) > 2, "the test must span several pages"
    assert all(len(p) == 25 for p in pages[:-1])
    assert len(records) == expected["contact"] == stats["contacts"]["live"]
    assert len({r["contactid"] for r in records}) == len(records)
    assert all(r.etag and r.etag.startswith('W/"') for r in records)
    leads = sdk.records.list("lead", select=["fullname"])
    assert len(leads) == expected["lead"]
    assert len(sdk.records.list("account", select=["name"])) == expected["account"]
    assert len(sdk.records.list("opportunity", select=["name"])) == expected["opportunity"]
    assert len(sdk.records.list("systemuser", select=["fullname"])) == expected["systemuser"]


def test_create_read_update_delete(sdk: DataverseClient) -> None:
    email = unique_email("crud")
    record_id = sdk.records.create("contact", {"firstname": "Jürgen", "lastname": "Müller", "emailaddress1": email,
                                               "jobtitle": "CFO"})
    uuid.UUID(record_id)
    got = sdk.records.retrieve("contact", record_id, select=["fullname", "emailaddress1", "jobtitle", "statecode"])
    assert got is not None
    assert got["fullname"] == "Jürgen Müller" and got["emailaddress1"] == email and got["statecode"] == 0
    first_etag = got.etag
    sdk.records.update("contact", record_id, {"jobtitle": "CEO"})
    again = sdk.records.retrieve("contact", record_id, select=["jobtitle"])
    assert again is not None and again["jobtitle"] == "CEO" and again.etag != first_etag
    sdk.records.delete("contact", record_id)
    assert sdk.records.retrieve("contact", record_id) is None


def test_update_of_a_missing_record_fails_with_0x80040217(sdk: DataverseClient) -> None:
    """FACTS §A6.3: update sends If-Match: * so a missing id is 404, not an upsert."""
    missing = str(uuid.uuid4())
    with pytest.raises(HttpError) as info:
        sdk.records.update("contact", missing, {"jobtitle": "x"})
    assert info.value.status_code == 404
    assert info.value.details["service_error_code"] == "0x80040217"


def test_filter_query_and_injection_proof_string_literals(sdk: DataverseClient) -> None:
    """Issue 4: `o'brien@x.com` round-trips as data through a doubled-quote OData literal."""
    email = f"o'brien.{uuid.uuid4().hex[:6]}@x.com"
    record_id = sdk.records.create("contact", {"firstname": "Siobhán", "lastname": "O'Brien", "emailaddress1": email})
    quoted = email.replace("'", "''")
    found = sdk.records.list("contact", select=["emailaddress1", "lastname"], filter=f"emailaddress1 eq '{quoted}'")
    assert [r["contactid"] for r in found] == [record_id]
    assert found[0]["emailaddress1"] == email and found[0]["lastname"] == "O'Brien"
    # A classic injection attempt is just a string that matches nothing.
    assert len(sdk.records.list("contact", filter="lastname eq 'x'' or 1 eq 1 or lastname eq ''y'")) == 0
    everyone = sdk.records.list("contact", select=["contactid"])
    assert len(everyone) > 1
    sdk.records.delete("contact", record_id)


def test_bulk_create_update_and_delete(sdk: DataverseClient, dynamics: RunningSandbox) -> None:
    """FACTS §A6.2/4/6: CreateMultiple, UpdateMultiple and BulkDelete."""
    tag = uuid.uuid4().hex[:8]
    ids = sdk.records.create("contact", [{"lastname": f"Bulk{tag}", "firstname": str(i)} for i in range(3)])
    assert len(ids) == 3 and len(set(ids)) == 3
    sdk.records.update("contact", ids, {"jobtitle": "Bulk title"})
    found = sdk.records.list("contact", select=["jobtitle"], filter=f"lastname eq 'Bulk{tag}'")
    assert sorted(r["contactid"] for r in found) == sorted(ids)
    assert {r["jobtitle"] for r in found} == {"Bulk title"}
    job = sdk.records.delete("contact", ids)
    assert job
    assert len(sdk.records.list("contact", filter=f"lastname eq 'Bulk{tag}'")) == 0
    with dynamics.admin() as admin:
        assert admin.get("/stats").json()["contacts"]["deleted"] >= 3


def test_picklist_labels_are_resolved_by_the_sdk(sdk: DataverseClient) -> None:
    """FACTS §A5: the SDK reads PicklistAttributeMetadata and turns a label into its option value."""
    lead_id = sdk.records.create("lead", {"subject": "Label test", "lastname": "Label", "leadsourcecode": "Web"})
    lead = sdk.records.retrieve("lead", lead_id, select=["leadsourcecode", "statecode", "statuscode"],
                                include_annotations="OData.Community.Display.V1.FormattedValue")
    assert lead is not None and lead["leadsourcecode"] == 8
    assert (lead["statecode"], lead["statuscode"]) == (0, 1)  # Open / New by default


def test_upsert_by_alternate_key(sdk: DataverseClient, dynamics: RunningSandbox) -> None:
    """FACTS §A9: one item is PATCH contacts(emailaddress1='…') without If-Match; several use UpsertMultiple."""
    email = f"up'sert.{uuid.uuid4().hex[:6]}@x.com"
    sdk.records.upsert("contact", [UpsertItem(alternate_key={"emailaddress1": email}, record={"lastname": "First"})])
    sdk.records.upsert("contact", [UpsertItem(alternate_key={"emailaddress1": email}, record={"lastname": "Second"})])
    rows = sdk.records.list("contact", select=["lastname", "emailaddress1"],
                            filter=f"emailaddress1 eq '{email.replace(chr(39), chr(39) * 2)}'")
    assert [(r["lastname"], r["emailaddress1"]) for r in rows] == [("Second", email)]
    other = unique_email("upsert-many")
    sdk.records.upsert("contact", [
        UpsertItem(alternate_key={"emailaddress1": email}, record={"lastname": "Third"}),
        UpsertItem(alternate_key={"emailaddress1": other}, record={"lastname": "New"}),
    ])
    with api(dynamics) as client:
        r = client.get(f"contacts(emailaddress1='{email.replace(chr(39), chr(39) * 2)}')",
                       params={"$select": "lastname"})
        assert r.status_code == 200 and r.json()["lastname"] == "Third"
        assert client.get(f"contacts(emailaddress1='{other}')").json()["lastname"] == "New"


def test_batch_changeset_through_the_sdk(sdk: DataverseClient) -> None:
    """FACTS §F: a change set's Content-ID reference binds the new contact to the new account."""
    tag = uuid.uuid4().hex[:8]
    batch = sdk.batch.new()
    batch.records.list("account", filter="statecode eq 0", select=["name"], top=2)
    batch.tables.get("contact")
    with batch.changeset() as cs:
        account_ref = cs.records.create("account", {"name": f"Batch {tag}"})
        cs.records.create("contact", {"lastname": f"Batch{tag}", "parentcustomerid_account@odata.bind": account_ref})
    result = batch.execute()
    assert not result.failed, [(r.status_code, r.error_message) for r in result.failed]
    assert len(result.entity_ids) == 2
    contact = sdk.records.list("contact", select=["_parentcustomerid_value"], filter=f"lastname eq 'Batch{tag}'")
    account = sdk.records.list("account", select=["name"], filter=f"name eq 'Batch {tag}'")
    assert contact[0]["_parentcustomerid_value"] == account[0]["accountid"]


def test_sdk_filter_builder_expressions(sdk: DataverseClient) -> None:
    """FACTS §A6: the SDK's helpers render In(...) with a JSON collection, UTC datetimes and LIKE as contains."""
    import datetime as dt

    from PowerPlatform.Dataverse.models.filters import col

    everyone = sdk.records.list("lead", select=["statecode", "modifiedon", "lastname"])
    cutoff = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    expression = col("statecode").in_([1, 2]) & (col("modifiedon") >= cutoff)
    hits = sdk.records.list("lead", select=["statecode"], filter=expression)
    expected = {r["leadid"] for r in everyone if r["statecode"] in (1, 2) and r["modifiedon"] >= "2024-01-01T00:00:00Z"}
    assert expected and {r["leadid"] for r in hits} == expected
    not_open = sdk.records.list("lead", select=["statecode"], filter=col("statecode").not_in([0]))
    assert {r["leadid"] for r in not_open} == {r["leadid"] for r in everyone if r["statecode"] != 0}
    like = sdk.records.list("lead", select=["lastname"], filter=col("lastname").like("%er%"))
    assert {r["leadid"] for r in like} == {r["leadid"] for r in everyone if "er" in (r["lastname"] or "").lower()}

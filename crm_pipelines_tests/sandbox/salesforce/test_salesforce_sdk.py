"""The Salesforce sandbox driven by simple-salesforce over HTTPS, as a sync would drive a real org (issue 3)."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from crm_pipelines.sandbox.salesforce.ids import checksum
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.salesforce.conftest import VERSION, LoginHostsToSandbox, rest, sdk, sf_session

PREFIXES = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006", "User": "005", "Task": "00T",
            "RecordType": "012"}


def test_query_all_pages_every_record_with_valid_ids(pristine_salesforce: RunningSandbox) -> None:
    """Issue 3: batches with nextRecordsUrl; 18-char ids with the right key prefix and checksum (FACTS §10)."""
    sf = sdk(pristine_salesforce)
    with pristine_salesforce.admin() as admin:
        stats, manifest = admin.get("/stats").json(), admin.get("/manifest").json()["crms"]["salesforce"]
    for name in ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "User"):
        assert stats[name]["live"] == manifest[name], name
    pages: list[int] = []
    result = sf.query("SELECT Id, Email, Account.Name FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"})
    ids = [r["Id"] for r in result["records"]]
    pages.append(len(result["records"]))
    while not result["done"]:
        assert result["nextRecordsUrl"].startswith(f"/services/data/v{VERSION}/query/")
        result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True,
                               headers={"Sforce-Query-Options": "batchSize=200"})
        ids += [r["Id"] for r in result["records"]]
        pages.append(len(result["records"]))
    assert len(ids) == len(set(ids)) == stats["Contact"]["live"] == result["totalSize"]
    assert len(pages) >= 3 and all(p == 200 for p in pages[:-1])
    assert sf.query_all("SELECT Id FROM Contact")["totalSize"] == len(ids)
    for name, prefix in PREFIXES.items():
        for record in sf.query(f"SELECT Id FROM {name} LIMIT 50")["records"]:
            rid = record["Id"]
            assert len(rid) == 18 and rid.startswith(prefix) and checksum(rid[:15]) == rid[15:], rid


def test_parent_fields_nest_like_salesforce(salesforce: RunningSandbox) -> None:
    """Issue 3: parent relationship fields (Account.Name) come back as nested objects with attributes (FACTS §5)."""
    sf = sdk(salesforce)
    rows = sf.query("SELECT Id, Name, Account.Name, Owner.Email FROM Contact WHERE AccountId != null LIMIT 5")
    record = rows["records"][0]
    assert record["attributes"]["type"] == "Contact"
    assert record["Account"]["attributes"]["type"] == "Account" and record["Account"]["Name"]
    assert record["Owner"]["Email"].endswith("@sandbox-sales.example.com")
    orphan = sf.query("SELECT Id, Account.Name FROM Contact WHERE AccountId = null LIMIT 1")["records"][0]
    assert orphan["Account"] is None


def test_where_order_limit_count_and_date_literals(salesforce: RunningSandbox) -> None:
    """Issue 3: WHERE with AND/OR/NOT, IN, LIKE, null, datetime literals (+00:00 as format_soql writes them)."""
    sf = sdk(salesforce)
    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    soql = format_soql("SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > {} ORDER BY SystemModstamp "
                       "DESC LIMIT 20", since)
    assert "+00:00" in soql
    rows = sf.query(soql)["records"]
    stamps = [r["SystemModstamp"] for r in rows]
    assert stamps == sorted(stamps, reverse=True) and all(s > "2025-01-01T00:00:00.000+0000" for s in stamps)
    assert stamps[0].endswith("+0000") and len(stamps[0]) == 28
    total = sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    converted = sf.query("SELECT COUNT() FROM Lead WHERE IsConverted = true")["totalSize"]
    open_ = sf.query("SELECT COUNT() FROM Lead WHERE NOT IsConverted = true")["totalSize"]
    assert converted > 0 and converted + open_ == total
    statuses = sf.query("SELECT COUNT() FROM Lead WHERE Status IN ('Open - Not Contacted', 'Working - Contacted')")
    assert 0 < statuses["totalSize"] < total
    no_email = sf.query("SELECT COUNT() FROM Lead WHERE Email = null OR Email LIKE '%@gmail.com'")
    assert no_email["totalSize"] > 0
    # Text comparisons are case-insensitive in SOQL.
    one = sf.query("SELECT Id, Email FROM Contact WHERE Email LIKE '%@%' LIMIT 1")["records"][0]
    upper = sf.query(format_soql("SELECT Id FROM Contact WHERE Email = {}", one["Email"].upper()))
    assert one["Id"] in [r["Id"] for r in upper["records"]]


def test_soql_injection_is_data_when_escaped_and_malformed_when_not(salesforce: RunningSandbox) -> None:
    """Issue 3 'done when': o'brien@x.com and ' OR Name != ' are data when escaped, malformed when not."""
    sf = sdk(salesforce)
    created = sf.Contact.create({"LastName": "O'Brien", "Email": "o'brien@x.com"})
    try:
        found = sf.query(format_soql("SELECT Id, Email FROM Contact WHERE Email = {}", "o'brien@x.com"))
        assert [r["Id"] for r in found["records"]] == [created["id"]]
        sneaky = format_soql("SELECT Id FROM Contact WHERE Email IN {}", ["' OR Name != '"])
        assert sf.query(sneaky)["totalSize"] == 0  # the whole value is one string
        for raw in ("SELECT Id FROM Contact WHERE Email = 'o'brien@x.com'",
                    "SELECT Id FROM Contact WHERE Email IN ('' OR Name != '')"):
            with pytest.raises(SalesforceMalformedRequest) as err:
                sf.query(raw)
            assert err.value.content[0]["errorCode"] == "MALFORMED_QUERY"
            assert "ERROR at Row:1:Column:" in err.value.content[0]["message"]
    finally:
        sf.Contact.delete(created["id"])


def test_crud_describe_and_limits(salesforce: RunningSandbox) -> None:
    """Issue 3: describe, CRUD by id, server-maintained audit fields, /limits and Sforce-Limit-Info."""
    sf = sdk(salesforce)
    describe = sf.Lead.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert describe["keyPrefix"] == "00Q" and describe["name"] == "Lead"
    assert fields["LastName"]["nillable"] is False and fields["Email"]["type"] == "email"
    assert fields["IsConverted"]["updateable"] is False and fields["Email"]["length"] == 80
    assert "Closed - Converted" in [p["value"] for p in fields["Status"]["picklistValues"]]
    rts = {r["name"] for r in sf.Opportunity.describe()["recordTypeInfos"]}
    assert {"Sales", "Enterprise"} <= rts

    created = sf.Lead.create({"LastName": "Sandbox", "FirstName": "Ada", "Company": "Acme", "Email": "ada@acme.io"})
    assert created["success"] and created["errors"] == [] and created["id"].startswith("00Q")
    record = sf.Lead.get(created["id"])
    assert record["Name"] == "Ada Sandbox" and record["Status"] == "Open - Not Contacted"
    assert record["CreatedDate"] == record["SystemModstamp"] and record["IsDeleted"] is False
    time.sleep(0.01)
    assert sf.Lead.update(created["id"], {"Title": "CTO"}) == 204
    after = sf.Lead.get(created["id"])
    assert after["Title"] == "CTO" and after["SystemModstamp"] > record["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert sf.Lead.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Lead.get(created["id"])
    assert gone.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"

    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    used, total = sf.api_usage["api-usage"]
    assert total == 100_000 and used > 0 and limits["DailyApiRequests"]["Remaining"] == total - used


def test_write_validation_errors(salesforce: RunningSandbox) -> None:
    """Issue 3: REQUIRED_FIELD_MISSING, INVALID_EMAIL_ADDRESS, converted Leads read-only (FACTS §3)."""
    sf = sdk(salesforce)
    cases = [
        (sf.Lead, {"LastName": "x"}, "REQUIRED_FIELD_MISSING", ["Company"]),
        (sf.Opportunity, {"Name": "x"}, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]),
        (sf.Contact, {"LastName": "x", "Email": "x@@bad"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
        (sf.Lead, {"LastName": "x", "Company": "y", "Status": "Nope"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
         ["Status"]),
        (sf.Contact, {"LastName": "x", "AccountId": "003000000000000AAA"}, "MALFORMED_ID", ["AccountId"]),
        (sf.Contact, {"LastName": "x", "Shoe__c": 1}, "INVALID_FIELD", ["Shoe__c"]),
        (sf.Contact, {"LastName": "x", "IsDeleted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsDeleted"]),
    ]
    for sobject, body, code, fields in cases:
        with pytest.raises(SalesforceMalformedRequest) as err:
            sobject.create(body)
        assert err.value.content == [{"message": err.value.content[0]["message"], "errorCode": code,
                                      "fields": fields}], body
    converted = sf.query("SELECT Id, ConvertedContactId FROM Lead WHERE IsConverted = true LIMIT 1")["records"][0]
    assert converted["ConvertedContactId"].startswith("003")
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.update(converted["Id"], {"Title": "changed"})
    assert err.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_opportunity_stage_drives_closed_won_and_probability(salesforce: RunningSandbox) -> None:
    """Issue 3: IsClosed/IsWon/Probability derived from the stage; each record type has its own stages."""
    sf = sdk(salesforce)
    rts = {r["DeveloperName"]: r["Id"] for r in sf.query("SELECT Id, DeveloperName FROM RecordType WHERE "
                                                          "SobjectType = 'Opportunity'")["records"]}
    assert set(rts) == {"Sales", "Enterprise"}
    counts = {k: sf.query(f"SELECT COUNT() FROM Opportunity WHERE RecordTypeId = '{v}'")["totalSize"]
              for k, v in rts.items()}
    assert all(counts.values())
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    opp = sf.Opportunity.create({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31",
                                 "AccountId": account, "Amount": 1000, "RecordTypeId": rts["Sales"]})
    record = sf.Opportunity.get(opp["id"])
    assert (record["IsClosed"], record["IsWon"], record["Probability"]) == (False, False, 10.0)
    sf.Opportunity.update(opp["id"], {"StageName": "Closed Won"})
    record = sf.Opportunity.get(opp["id"])
    assert (record["IsClosed"], record["IsWon"], record["Probability"], record["ForecastCategoryName"]) == (
        True, True, 100.0, "Closed")
    with pytest.raises(SalesforceMalformedRequest) as err:  # an Enterprise-only stage on a Sales opportunity
        sf.Opportunity.update(opp["id"], {"StageName": "Perception Analysis"})
    assert err.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Opportunity.update(opp["id"], {"IsWon": False})
    sf.Opportunity.delete(opp["id"])


def test_state_and_country_picklists_are_an_org_setting(salesforce: RunningSandbox) -> None:
    """Issue 3: with state/country picklists on, values outside the picklist are rejected (FACTS §13)."""
    sf = sdk(salesforce)
    free = sf.Contact.create({"LastName": "Free", "MailingCountry": "Deutschland"})
    with salesforce.admin() as admin:
        admin.put("/settings", json={"state_country_picklists": True}).raise_for_status()
    try:
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.Contact.create({"LastName": "Strict", "MailingCountry": "Deutschland"})
        assert err.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
        assert err.value.content[0]["fields"] == ["MailingCountry"]
        ok = sf.Contact.create({"LastName": "Strict", "MailingCountryCode": "US", "MailingState": "California"})
        record = sf.Contact.get(ok["id"])
        assert (record["MailingCountry"], record["MailingCountryCode"], record["MailingState"],
                record["MailingStateCode"]) == ("United States", "US", "California", "CA")
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.Contact.update(ok["id"], {"MailingStateCode": "BY"})
        assert err.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        assert "MailingCountryCode" in {f["name"] for f in sf.Contact.describe()["fields"]}
        seeded = sf.query("SELECT Id, MailingCountryCode FROM Contact WHERE MailingCountryCode = 'DE' LIMIT 1")
        assert seeded["totalSize"] == 1
        sf.Contact.delete(ok["id"])
    finally:
        with salesforce.admin() as admin:
            admin.put("/settings", json={"state_country_picklists": False}).raise_for_status()
    # Without picklists the code fields do not exist, as in an org that never turned them on.
    assert "MailingCountryCode" not in {f["name"] for f in sf.Contact.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT MailingCountryCode FROM Contact LIMIT 1")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"
    sf.Contact.delete(free["id"])


def test_upsert_by_external_id(salesforce: RunningSandbox) -> None:
    """Issue 3: upsert by external id field: 201 when created, 200 when it updated the match (FACTS §8)."""
    sf = sdk(salesforce)
    assert sf.Account.upsert("External_Id__c/hs-42", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert("External_Id__c/hs-42", {"Name": "Upserted again"}) == 200
    record = sf.Account.get_by_custom_id("External_Id__c", "hs-42")
    assert record["Name"] == "Upserted again"
    sf.Account.delete(record["Id"])


def test_composite_collections_with_all_or_none(salesforce: RunningSandbox) -> None:
    """Issue 3 / FACTS §9: create, update, upsert, delete collections; per-record results; allOrNone rolls back."""
    sf = sdk(salesforce)
    leads = [{"attributes": {"type": "Lead"}, "LastName": f"Bulk{i}", "Company": "Acme"} for i in range(3)]
    bad = {"attributes": {"type": "Lead"}, "LastName": "NoCompany"}
    before = sf.query("SELECT COUNT() FROM Lead")["totalSize"]

    rolled = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [*leads, bad]})
    assert [r["success"] for r in rolled] == [False] * 4
    assert {r["errors"][0]["statusCode"] for r in rolled[:3]} == {"ALL_OR_NONE_OPERATION_ROLLED_BACK"}
    assert rolled[3]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == before

    partial = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [*leads, bad]})
    assert [r["success"] for r in partial] == [True, True, True, False]
    ids = [r["id"] for r in partial[:3]]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == before + 3

    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Lead"}, "id": i, "Title": "Buyer"} for i in ids]})
    assert all(r["success"] for r in updated)
    upserted = sf.restful("composite/sobjects/Lead/External_Id__c", method="PATCH", json={"records": [
        {"attributes": {"type": "Lead"}, "External_Id__c": "ext-1", "LastName": "U", "Company": "C"}]})
    assert upserted[0]["success"] and upserted[0]["created"] is True
    got = sf.restful("composite/sobjects/Lead", params={"ids": ",".join(ids), "fields": "Id,Title"})
    assert [g["Title"] for g in got] == ["Buyer"] * 3
    deleted = sf.restful("composite/sobjects", method="DELETE",
                         params={"ids": ",".join([*ids, upserted[0]["id"]]), "allOrNone": "false"})
    assert all(r["success"] for r in deleted)
    too_many = [dict(leads[0]) for _ in range(201)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})


def test_get_updated_and_get_deleted(salesforce: RunningSandbox) -> None:
    """Issue 3 / FACTS §7: replication windows list changed ids and deletions with latestDateCovered."""
    sf = sdk(salesforce)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    lead = sf.Lead.create({"LastName": "Replicated", "Company": "Acme"})["id"]
    gone = sf.Lead.create({"LastName": "Removed", "Company": "Acme"})["id"]
    sf.Lead.delete(gone)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    updated = sf.Lead.updated(start, end)
    assert lead in updated["ids"] and gone not in updated["ids"]
    assert updated["latestDateCovered"].endswith("+0000")
    deleted = sf.Lead.deleted(start, end)
    assert gone in [d["id"] for d in deleted["deletedRecords"]] and lead not in str(deleted)
    window = (format(start, "%Y-%m-%dT%H:%M"), deleted["latestDateCovered"])
    assert all(window[0] <= d["deletedDate"] <= window[1] for d in deleted["deletedRecords"])
    assert deleted["earliestDateAvailable"] < deleted["latestDateCovered"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.updated(start - dt.timedelta(days=31), end)
    assert err.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    sf.Lead.delete(lead)


def test_oauth_client_credentials_jwt_and_refresh(salesforce: RunningSandbox) -> None:
    """Issue 3: token endpoint for client-credentials, JWT bearer (login and test hosts) and refresh (FACTS §2)."""
    creds = salesforce.credentials
    session = sf_session(salesforce)
    adapter = LoginHostsToSandbox(salesforce.base_url)
    session.mount("https://", adapter)

    cc = Salesforce(consumer_key=creds["consumer_key"], consumer_secret=creds["consumer_secret"], domain="acme.my",
                    session=session, version=VERSION)
    assert cc.query("SELECT COUNT() FROM Account")["totalSize"] > 0
    for domain in ("login", "test"):  # production and sandbox orgs log in on different hosts
        jwt_sf = Salesforce(username=creds["username"], consumer_key=creds["consumer_key"],
                            privatekey_file=creds["private_key_file"], domain=domain, session=session,
                            version=VERSION)
        assert jwt_sf.query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1
    assert adapter.hosts_seen == ["acme.my.salesforce.com", "login.salesforce.com", "test.salesforce.com"]
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(consumer_key=creds["consumer_key"], consumer_secret="wrong", domain="acme.my", session=session)

    r = httpx.post(creds["token_url"], data={"grant_type": "refresh_token", "client_id": creds["consumer_key"],
                                             "client_secret": creds["consumer_secret"],
                                             "refresh_token": creds["refresh_token"]}, verify=salesforce.verify)
    body = r.json()
    assert r.status_code == 200 and set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at",
                                                  "signature"}
    assert body["instance_url"] == salesforce.base_url and body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    bad = httpx.post(creds["token_url"], data={"grant_type": "refresh_token", "client_id": creds["consumer_key"],
                                               "refresh_token": "nope"}, verify=salesforce.verify)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_expired_session_is_refreshed_by_the_sdk(salesforce: RunningSandbox) -> None:
    """Issue 3: an expired token gets 401 INVALID_SESSION_ID as a list, so the SDK logs in again (FACTS §1, §3)."""
    creds = salesforce.credentials
    session = sf_session(salesforce)
    session.mount("https://", LoginHostsToSandbox(salesforce.base_url))
    sf = Salesforce(consumer_key=creds["consumer_key"], consumer_secret=creds["consumer_secret"], domain="acme.my",
                    session=session, version=VERSION)
    first = sf.session_id
    with salesforce.admin() as admin:
        admin.post("/oauth/expire").raise_for_status()
    with rest(salesforce, first) as client:
        r = client.get("/limits")
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] > 0  # re-logged in behind the scenes
    assert sf.session_id != first
    # The announced session was expired too; reset() re-activates it for the other tests.
    with salesforce.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
    assert sdk(salesforce).query("SELECT COUNT() FROM User")["totalSize"] > 0

"""Query options on the wire: $select, $filter, $orderby, $top, $count, $expand, paging and annotations.

Issue 4 "What it serves", query bullet; facts cited as FACTS §C.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

FORMATTED = "OData.Community.Display.V1.FormattedValue"


def all_rows(client, path: str, params: dict, page_size: int = 5000) -> list[dict]:
    rows, url, kw = [], path, {"params": params}
    while url:
        r = client.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}, **kw)
        assert r.status_code == 200, r.text
        rows += r.json()["value"]
        url, kw = r.json().get("@odata.nextLink"), {}
    return rows


def test_collection_shape_etag_and_context(dynamics: RunningSandbox) -> None:
    """FACTS §C: @odata.context names the set and selection; every row has @odata.etag and its key."""
    with api(dynamics) as client:
        r = client.get("contacts", params={"$select": "fullname,emailaddress1", "$top": "3"})
    assert r.status_code == 200 and r.headers["OData-Version"] == "4.0"
    body = r.json()
    assert body["@odata.context"] == f"{dynamics.base_url}/api/data/v9.2/$metadata#contacts(fullname,emailaddress1)"
    assert len(body["value"]) == 3
    for row in body["value"]:
        assert set(row) == {"@odata.etag", "fullname", "emailaddress1", "contactid"}
        assert row["@odata.etag"].startswith('W/"')


def test_paging_with_maxpagesize_and_absolute_next_links(dynamics: RunningSandbox) -> None:
    """FACTS §C: Preference-Applied echoes the page size; the skiptoken is a <cookie> element."""
    with api(dynamics) as client:
        r = client.get("contacts", params={"$select": "fullname"}, headers={"Prefer": "odata.maxpagesize=10"})
        body = r.json()
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
        assert len(body["value"]) == 10
        link = body["@odata.nextLink"]
        assert link.startswith(f"{dynamics.base_url}/api/data/v9.2/contacts?")
        assert "$select=fullname" in link and '<cookie pagenumber="2"' in unquote(link)
        second = client.get(link, headers={"Prefer": "odata.maxpagesize=10"}).json()
        assert not {x["contactid"] for x in body["value"]} & {x["contactid"] for x in second["value"]}
        # Larger than the maximum is treated as 5,000 (FACTS §C).
        big = client.get("contacts", params={"$select": "fullname"}, headers={"Prefer": "odata.maxpagesize=9000"})
        assert big.headers["Preference-Applied"] == "odata.maxpagesize=5000"
        assert "@odata.nextLink" not in big.json()


def test_orderby_pages_are_stable_and_complete(dynamics: RunningSandbox) -> None:
    """Keyset pages over a descending, nullable sort key give every row exactly once, in order."""
    with api(dynamics) as client:
        rows = all_rows(client, "contacts", {"$select": "jobtitle,modifiedon", "$orderby": "jobtitle desc"}, 7)
        everyone = all_rows(client, "contacts", {"$select": "contactid"})
    assert sorted(r["contactid"] for r in rows) == sorted(r["contactid"] for r in everyone)
    titles = [r["jobtitle"] for r in rows]
    non_null = [t for t in titles if t is not None]
    assert titles[: len(non_null)] == non_null  # NULLs last when descending
    assert [t.lower() for t in non_null] == sorted((t.lower() for t in non_null), reverse=True)


@pytest.mark.parametrize(
    ("expression", "check"),
    [
        ("statecode eq 0", lambda r: r["statecode"] == 0),
        ("statecode ne 0", lambda r: r["statecode"] != 0),
        ("emailaddress1 eq null", lambda r: r["emailaddress1"] is None),
        ("emailaddress1 ne null and contains(emailaddress1,'@')", lambda r: "@" in (r["emailaddress1"] or "")),
        ("startswith(lastname,'M')", lambda r: (r["lastname"] or "").lower().startswith("m")),
        ("endswith(emailaddress1,'.com')", lambda r: (r["emailaddress1"] or "").lower().endswith(".com")),
        ("not (statecode eq 0) or jobtitle eq null", lambda r: r["statecode"] != 0 or r["jobtitle"] is None),
        ("modifiedon ge 2024-01-01T00:00:00Z", lambda r: r["modifiedon"] >= "2024-01-01T00:00:00Z"),
        ("statecode in (0,1)", lambda r: True),
    ],
)
def test_filter_operators(dynamics: RunningSandbox, expression: str, check) -> None:
    cols = "statecode,emailaddress1,lastname,jobtitle,modifiedon"
    with api(dynamics) as client:
        everyone = all_rows(client, "contacts", {"$select": cols})
        hits = all_rows(client, "contacts", {"$select": cols, "$filter": expression})
    expected = {r["contactid"] for r in everyone if check(r)}
    assert {r["contactid"] for r in hits} == expected
    assert hits or expression.startswith("statecode ne")


def test_a_time_with_a_fraction_of_a_second_compares_as_that_instant(dynamics: RunningSandbox) -> None:
    """``modifiedon`` holds whole seconds, a filter's time may have a fraction: a window [start, now) that ends
    within the second a row was changed in holds the row (OPS-7: the change sensor's count and the incremental
    read ask for such windows; cutting ``now`` to its second hid a change made in that second until a later
    poll, and the sync planned on the stale copy meanwhile)."""
    with api(dynamics) as client:
        row = client.get("contacts", params={"$select": "modifiedon", "$top": "1"}).json()["value"][0]
        at = row["modifiedon"]  # e.g. 2024-03-01T10:20:30Z
        half = at.replace("Z", ".5Z")

        def hits(condition: str) -> bool:
            found = client.get("contacts", params={
                "$select": "contactid", "$filter": f"contactid eq {row['contactid']} and {condition}"})
            assert found.status_code == 200, found.text
            return bool(found.json()["value"])

        assert hits(f"modifiedon lt {half}") and hits(f"modifiedon le {half}")
        assert not hits(f"modifiedon gt {half}") and not hits(f"modifiedon ge {half}")
        assert not hits(f"modifiedon eq {half}") and hits(f"modifiedon ne {half}")
        assert hits(f"modifiedon ge {at} and modifiedon lt {half}")  # the window ending within that second
        assert hits(f"{half} gt modifiedon")  # the literal on the left reads the same
        assert hits(f"modifiedon eq {at}") and not hits(f"modifiedon lt {at}")  # whole seconds as before


def test_filter_by_guid_lookup_and_case_insensitive_equality(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        with_parent = client.get("contacts", params={
            "$select": "_parentcustomerid_value,emailaddress1", "$filter": "_parentcustomerid_value ne null",
            "$top": "1"}).json()["value"][0]
        parent = with_parent["_parentcustomerid_value"]
        same = all_rows(client, "contacts", {"$filter": f"_parentcustomerid_value eq {parent}",
                                             "$select": "_parentcustomerid_value"})
        assert same and all(r["_parentcustomerid_value"] == parent for r in same)
        email = client.get("contacts", params={"$filter": "contains(emailaddress1,'@')", "$select": "emailaddress1",
                                               "$top": "1"}).json()["value"][0]["emailaddress1"]
        upper = email.upper().replace("'", "''")
        hits = client.get("contacts", params={"$filter": f"emailaddress1 eq '{upper}'"}).json()["value"]
        assert email in [h["emailaddress1"] for h in hits]  # SQL Server collation: case-insensitive


def test_filter_errors(dynamics: RunningSandbox) -> None:
    """FACTS §E: unknown property 400 0x80060888; wrong literal type and syntax errors are 400."""
    with api(dynamics) as client:
        r = client.get("contacts", params={"$filter": "nosuchcolumn eq 1"})
        assert r.status_code == 400
        assert r.json()["error"] == {
            "code": "0x80060888",
            "message": "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.contact'.",
        }
        assert client.get("contacts", params={"$filter": "statecode eq 'x'"}).status_code == 400
        assert client.get("contacts", params={"$filter": "emailaddress1 eq"}).status_code == 400
        assert client.get("contacts", params={"$select": "parentcustomerid"}).status_code == 400
        skip = client.get("contacts", params={"$skip": "10"})
        assert skip.status_code == 400 and skip.json()["error"]["code"].startswith("0x")


def test_top_and_count_with_total_record_count_annotations(dynamics: RunningSandbox, ) -> None:
    """FACTS §C: $count=true adds @odata.count (capped at 5,000) and the totalrecordcount annotations."""
    with api(dynamics) as client:
        total = len(all_rows(client, "contacts", {"$select": "contactid"}))
        r = client.get("contacts", params={"$count": "true", "$top": "2", "$select": "fullname"}, headers={
            "Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.totalrecordcount,'
                      'Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"'})
    body = r.json()
    assert len(body["value"]) == 2 and "@odata.nextLink" not in body
    assert body["@odata.count"] == total
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == total
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False


def test_formatted_values_and_lookup_annotations(dynamics: RunningSandbox) -> None:
    """FACTS §C: formatted values and lookup annotations only when Prefer asks for them."""
    params = {"$select": "name,statecode,statuscode,estimatedvalue,estimatedclosedate,_customerid_value,salesstage",
              "$filter": "statecode eq 1 and _customerid_value ne null", "$top": "1"}
    with api(dynamics) as client:
        plain = client.get("opportunities", params=params).json()["value"][0]
        r = client.get("opportunities", params=params, headers={"Prefer": 'odata.include-annotations="*"'})
    row = r.json()["value"][0]
    assert not any("@" in k for k in plain if k != "@odata.etag")
    assert row[f"statecode@{FORMATTED}"] == "Won" and row[f"statuscode@{FORMATTED}"] == "Won"
    assert row[f"salesstage@{FORMATTED}"] in ("Qualify", "Develop", "Propose", "Close")
    assert row[f"estimatedvalue@{FORMATTED}"][0] in "$€"
    assert row["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] in ("account", "contact")
    assert row["_customerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"].startswith("customerid_")
    assert row[f"_customerid_value@{FORMATTED}"]
    assert len(row["estimatedclosedate"]) == 10  # a date-only column is an Edm.Date


def test_expand_single_valued_lookup(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        r = client.get("contacts", params={
            "$select": "fullname,_parentcustomerid_value", "$filter": "_parentcustomerid_value ne null",
            "$expand": "parentcustomerid_account($select=name,accountnumber)", "$top": "3"})
        assert r.status_code == 200, r.text
        for row in r.json()["value"]:
            account = row["parentcustomerid_account"]
            assert account["accountid"] == row["_parentcustomerid_value"]
            assert set(account) == {"@odata.etag", "name", "accountnumber", "accountid"}
        bad = client.get("contacts", params={"$expand": "nosuchnav"})
        assert bad.status_code == 400


def test_retrieve_by_id_and_alternate_key(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        # Other tests on this session's sandbox create accounts without a number, and GUID order puts
        # them anywhere: pick one that has the key.
        account = client.get("accounts", params={
            "$select": "accountnumber", "$filter": "accountnumber ne null", "$top": "1"}).json()["value"][0]
        by_id = client.get(f"accounts({account['accountid']})", params={"$select": "name"})
        assert by_id.status_code == 200
        assert by_id.json()["@odata.context"].endswith("$metadata#accounts(name)/$entity")
        by_key = client.get(f"accounts(accountnumber='{account['accountnumber']}')", params={"$select": "name"})
        assert by_key.status_code == 200, by_key.text
        assert by_key.json()["accountid"] == account["accountid"]
        missing = client.get("accounts(00000000-0000-0000-0000-000000000001)")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80040217"
        wrong_set = client.get("Account")
        assert wrong_set.status_code == 404
        assert wrong_set.json()["error"] == {"code": "0x8006088a",
                                             "message": "Resource not found for the segment 'Account'."}

"""What a client sees on the wire: discovery, auth errors, SOQL errors, paging, limits, faults, Bulk API 2.0
query jobs and the admin UI actions (issue 3; FACTS §n cites shared/specs/salesforce/FACTS.md)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import httpx
import orjson
import pytest

from crm_pipelines.sandbox.salesforce.ids import is_valid_id
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.salesforce.conftest import VERSION, rest, set_faults

LIMIT_INFO = re.compile(r"^api-usage=(\d+)/(\d+)$")


def test_versions_and_resources(salesforce: RunningSandbox) -> None:
    """Issue 3: /services/data/ lists versions without a session and without Sforce-Limit-Info (FACTS §4)."""
    r = httpx.get(f"{salesforce.base_url}/services/data/", verify=salesforce.verify)
    assert r.status_code == 200 and "Sforce-Limit-Info" not in r.headers
    versions = {v["version"]: v["url"] for v in r.json()}
    assert versions[VERSION] == f"/services/data/v{VERSION}"
    with rest(salesforce) as client:
        resources = client.get("/")
        assert resources.json()["query"] == f"/services/data/v{VERSION}/query"
        assert LIMIT_INFO.match(resources.headers["Sforce-Limit-Info"])
        described = client.get("/sobjects").json()
        assert {"Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "OpportunityStage",
                "RecordType", "User", "Task"} <= {s["name"] for s in described["sobjects"]}
    with rest(salesforce) as client:
        assert client.get(f"{salesforce.base_url}/services/data/v12.0/limits").status_code == 404
        missing = client.get("/sobjects/Lead/describe/nothing/here")
        assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
        wrong = client.put("/sobjects/Lead/describe")
        assert wrong.status_code == 405 and wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_missing_unknown_or_expired_session_is_invalid_session_id(salesforce: RunningSandbox) -> None:
    """Issue 3 / FACTS §3: 401 with a JSON list [{message, errorCode: INVALID_SESSION_ID}]."""
    url = f"{salesforce.base_url}/services/data/v{VERSION}/sobjects/Lead/describe"
    for headers in ({}, {"Authorization": "Bearer 00D000000000000!AQnope"}):
        r = httpx.get(url, headers=headers, verify=salesforce.verify)
        assert r.status_code == 401
        assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_soql_errors_have_salesforces_shape(salesforce: RunningSandbox) -> None:
    """Issue 3: MALFORMED_QUERY / INVALID_FIELD / INVALID_TYPE with the query, a caret and Row:Column."""
    cases = {
        "SELECT Id FORM Lead": ("MALFORMED_QUERY", "ERROR at Row:1:Column:11\nunexpected token: FORM"),
        "SELECT Id, Shoe FROM Lead": ("INVALID_FIELD", "No such column 'Shoe' on entity 'Lead'."),
        "SELECT Id FROM Lead WHERE Boss.Name = 'x'": ("INVALID_FIELD", "Didn't understand relationship 'Boss'"),
        "SELECT Id FROM Leed": ("INVALID_TYPE", "sObject type 'Leed' is not supported."),
        "SELECT Id FROM Lead WHERE CreatedDate > '2024-01-01'": ("INVALID_FIELD", "must be of type dateTime"),
        "SELECT Id FROM Lead WHERE Id = 'nope'": ("INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        "SELECT Id FROM Lead WHERE Email = 'a\\qb'": ("MALFORMED_QUERY", "Illegal character sequence '\\q'"),
        "SELECT Id FROM Lead LIMIT": ("MALFORMED_QUERY", "unexpected token: <EOF>"),
    }
    with rest(salesforce) as client:
        for soql, (code, text) in cases.items():
            r = client.get("/query", params={"q": soql})
            assert r.status_code == 400, soql
            [error] = r.json()
            assert error["errorCode"] == code and text in error["message"], (soql, error)
            assert error["message"].startswith("\n") and "^\nERROR at Row:1:Column:" in error["message"]
            assert LIMIT_INFO.match(r.headers["Sforce-Limit-Info"])


def test_paging_locators_and_query_vs_query_all(salesforce: RunningSandbox) -> None:
    """Issue 3 / FACTS §5: nextRecordsUrl `<queryId>-<offset>`; IsDeleted rows only through queryAll."""
    with rest(salesforce) as client:
        first = client.get("/query", params={"q": "SELECT Id FROM Contact ORDER BY LastName"},
                           headers={"Sforce-Query-Options": "batchSize=250"}).json()
        assert first["done"] is False and len(first["records"]) == 250 and first["totalSize"] > 250
        assert re.fullmatch(rf"/services/data/v{VERSION}/query/01g\w{{15}}-250", first["nextRecordsUrl"])
        second = client.get(salesforce.base_url + first["nextRecordsUrl"]).json()
        assert second["totalSize"] == first["totalSize"]
        assert not {r["Id"] for r in first["records"]} & {r["Id"] for r in second["records"]}
        skipped = client.get("/query", params={"q": "SELECT Id FROM Contact LIMIT 5 OFFSET 3"}).json()
        plain = client.get("/query", params={"q": "SELECT Id FROM Contact LIMIT 8"}).json()
        assert skipped["records"] == plain["records"][3:] and skipped["totalSize"] == 5
        bad = client.get("/query/01gXXXXXXXXXXXXXXX-2000")
        assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"

        lead = client.post("/sobjects/Lead", json={"LastName": "Binned", "Company": "Acme"}).json()["id"]
        assert client.delete(f"/sobjects/Lead/{lead}").status_code == 204
        soql = f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{lead}'"
        assert client.get("/query", params={"q": soql}).json()["totalSize"] == 0
        everything = client.get("/queryAll", params={"q": soql}).json()
        assert everything["records"][0]["IsDeleted"] is True
        assert client.get("/queryAll", params={"q": "SELECT COUNT() FROM Lead WHERE IsDeleted = true"}).json()[
            "totalSize"] >= 1
        assert client.delete(f"/sobjects/Lead/{lead}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_daily_allocation_runs_out_with_request_limit_exceeded(salesforce: RunningSandbox) -> None:
    """Issue 3 / FACTS §4: Sforce-Limit-Info counts calls; a spent allocation gives 403 REQUEST_LIMIT_EXCEEDED."""
    set_faults(salesforce, daily_limit=5)
    with rest(salesforce) as client:
        answers = [client.get("/limits") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [403] * 2
    assert [a.headers["Sforce-Limit-Info"] for a in answers[:5]] == [f"api-usage={i}/5" for i in range(1, 6)]
    assert answers[4].json()["DailyApiRequests"] == {"Max": 5, "Remaining": 0}
    assert answers[5].json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert answers[5].headers["Sforce-Limit-Info"] == "api-usage=5/5"
    set_faults(salesforce, daily_limit=5, rate_limits_enabled=False)
    with rest(salesforce) as client:
        assert all(client.get("/limits").status_code == 200 for _ in range(7))


def test_faults_answer_with_salesforce_bodies(salesforce: RunningSandbox) -> None:
    """Issue 3: the framework's faults with Salesforce's own status codes and bodies (no 429 in Salesforce)."""
    with rest(salesforce) as client:
        set_faults(salesforce, rate_429=1.0)
        throttled = client.get("/limits")
        assert throttled.status_code == 403 and throttled.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        set_faults(salesforce, rate_500=1.0)
        broken = client.get("/limits")
        assert broken.status_code == 500 and broken.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
        assert "ErrorId" in broken.json()[0]["message"]
        set_faults(salesforce, rate_503=1.0)
        assert client.get("/limits").status_code == 503
        set_faults(salesforce, rate_malformed=1.0)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(client.get("/limits").content)
        set_faults(salesforce, rate_drop=1.0)
        with pytest.raises(httpx.TransportError):
            client.get("/limits")
    set_faults(salesforce)
    with salesforce.admin() as admin:
        usage = admin.get("/usage").json()["endpoints"]
    assert usage["GET /services/data/v{version}/limits"] >= 5


def _csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_bulk_query_job_pages_csv_by_locator(salesforce: RunningSandbox) -> None:
    """Issue 3: Bulk API 2.0 query jobs: create, poll, CSV results paged with Sforce-Locator and maxRecords."""
    with salesforce.admin() as admin:
        live = admin.get("/stats").json()["Contact"]["live"]
    with rest(salesforce) as client:
        job = client.post("/jobs/query", json={
            "operation": "query", "query": "SELECT Id, Email, Account.Name, HasOptedOutOfEmail FROM Contact"}).json()
        assert job["id"].startswith("750") and job["state"] == "UploadComplete" and job["object"] == "Contact"
        status = client.get(f"/jobs/query/{job['id']}").json()
        assert status["state"] == "JobComplete" and status["numberRecordsProcessed"] == live
        rows, locator, calls = [], None, 0
        while locator != "null":
            params = {"maxRecords": 150, **({"locator": locator} if locator else {})}
            page = client.get(f"/jobs/query/{job['id']}/results", params=params)
            calls += 1
            batch = _csv(page)
            assert int(page.headers["Sforce-NumberOfRecords"]) == len(batch) <= 150
            rows += batch
            locator = page.headers["Sforce-Locator"]
        assert calls == -(-live // 150) and len({r["Id"] for r in rows}) == live
        assert list(rows[0]) == ["Id", "Email", "Account.Name", "HasOptedOutOfEmail"]
        assert {r["HasOptedOutOfEmail"] for r in rows} == {"false"} and all(is_valid_id(r["Id"]) for r in rows)
        assert client.delete(f"/jobs/query/{job['id']}").status_code == 204
        assert client.get(f"/jobs/query/{job['id']}").status_code == 404

        deleted = client.post("/sobjects/Lead", json={"LastName": "Gone", "Company": "x"}).json()["id"]
        client.delete(f"/sobjects/Lead/{deleted}")
        soql = f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{deleted}'"
        for operation, expected in (("query", []), ("queryAll", [{"Id": deleted, "IsDeleted": "true"}])):
            job = client.post("/jobs/query", json={"operation": operation, "query": soql}).json()
            assert _csv(client.get(f"/jobs/query/{job['id']}/results")) == expected
        bad = client.post("/jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Lead"})
        assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_ui_edits_and_deletes_show_up_in_replication(salesforce: RunningSandbox) -> None:
    """Issue 3 / base admin routes: a person's edit bumps SystemModstamp; getUpdated/getDeleted see it."""
    start = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with rest(salesforce) as client:
        contact = client.get("/query", params={"q": "SELECT Id, SystemModstamp FROM Contact LIMIT 1"}).json()[
            "records"][0]
    with salesforce.admin() as admin:
        edited = admin.patch(f"/ui/Contact/{contact['Id']}", json={"Title": "Edited in the UI"})
        assert edited.status_code == 200 and edited.json()["SystemModstamp"] > contact["SystemModstamp"]
        created = admin.post("/ui/Lead", json={"LastName": "Walk-in", "Company": "Shop"})
        assert created.status_code == 201
        assert admin.delete(f"/ui/Lead/{created.json()['Id']}").status_code == 204
        rejected = admin.post("/ui/Lead", json={"LastName": "No company"})
        assert rejected.status_code == 400 and rejected.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with rest(salesforce) as client:
        updated = client.get("/sobjects/Contact/updated/", params={"start": start, "end": end}).json()
        assert contact["Id"] in updated["ids"]
        deleted = client.get("/sobjects/Lead/deleted/", params={"start": start, "end": end}).json()
        assert created.json()["Id"] in [d["id"] for d in deleted["deletedRecords"]]
        since = client.get("/query", params={"q": f"SELECT Id FROM Contact WHERE SystemModstamp >= {start}"}).json()
        assert contact["Id"] in [r["Id"] for r in since["records"]]


@pytest.mark.parametrize("order", ["SystemModstamp DESC", "Email ASC NULLS LAST, Id", "LastName, Id"])
def test_ordered_paging_returns_every_row_once_in_order(salesforce: RunningSandbox, order: str) -> None:
    """Issue 3: ORDER BY with nextRecordsUrl: no row lost or repeated across batches, in order (FACTS §5)."""
    with rest(salesforce) as client:
        soql = f"SELECT Id, SystemModstamp, Email, LastName FROM Contact ORDER BY {order}"
        options = {"Sforce-Query-Options": "batchSize=200"}
        page = client.get("/query", params={"q": soql}, headers=options).json()
        rows = page["records"]
        while not page["done"]:
            page = client.get(salesforce.base_url + page["nextRecordsUrl"], headers=options).json()
            rows += page["records"]
        assert len(rows) == len({r["Id"] for r in rows}) == page["totalSize"] > 400
        first = order.split()[0].rstrip(",")
        keys = [r[first].encode().lower() for r in rows if r[first] is not None]  # case-insensitive, as SOQL
        assert keys == sorted(keys, reverse=order.startswith("SystemModstamp"))

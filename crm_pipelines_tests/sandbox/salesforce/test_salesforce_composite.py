"""Issue 14 (OPS-2): the Composite resource, ``POST /services/data/vXX.X/composite``, in the Salesforce sandbox.

Several reads in one call that counts as ONE toward the org's limits: results equal the same requests sent
alone, the documented limits (25 subrequests, 5 of them queries) are enforced, and the call is counted once
in ``/__sandbox__/usage`` and in the daily allocation (``Sforce-Limit-Info``). Source of the facts: the
docstring of ``crm_pipelines/sandbox/salesforce/composite_request.py``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.salesforce.conftest import VERSION, rest, sdk, set_faults

POLLED = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "Task")
DATA = f"/services/data/v{VERSION}"
COMPOSITE = "POST /services/data/v{version}/composite"


def count_query(obj: str) -> str:
    return f"SELECT COUNT() FROM {obj} WHERE SystemModstamp >= 2000-01-01T00:00:00Z AND SystemModstamp < " \
           "2100-01-01T00:00:00Z"


def query_sub(ref: str, soql: str, resource: str = "query", headers: dict | None = None) -> dict:
    sub = {"method": "GET", "url": f"{DATA}/{resource}/?{urlencode({'q': soql})}", "referenceId": ref}
    if headers:
        sub["httpHeaders"] = headers
    return sub


def usage(sandbox: RunningSandbox) -> dict[str, int]:
    with sandbox.admin() as admin:
        return admin.get("/usage").json()["endpoints"]


def test_subrequests_answer_what_the_same_requests_answer_alone(salesforce: RunningSandbox) -> None:
    """Each subrequest's body is the body its request gets on its own: COUNT() over three objects, a query with
    records, a queryAll, an sObject row; results in request order under their referenceIds (issue 14)."""
    with rest(salesforce) as client:
        alone = {obj: client.get("/query", params={"q": count_query(obj)}).json() for obj in POLLED[:3]}
        records_q = "SELECT Id, LastName FROM Contact ORDER BY Id LIMIT 3"
        records = client.get("/query", params={"q": records_q}).json()
        contact_id = records["records"][0]["Id"]
        deleted_q = "SELECT COUNT() FROM Account WHERE IsDeleted = true"
        deleted = client.get("/queryAll", params={"q": deleted_q}).json()
        row = client.get(f"/sobjects/Contact/{contact_id}").json()
        subrequests = [
            *(query_sub(obj, count_query(obj)) for obj in POLLED[:3]),
            query_sub("records", records_q),
            {"method": "GET", "url": f"{DATA}/sobjects/Contact/{contact_id}", "referenceId": "row"},
            query_sub("deleted", deleted_q, "queryAll"),
        ]
        answer = client.post("/composite", json={"allOrNone": False, "compositeRequest": subrequests})
    assert answer.status_code == 200
    results = answer.json()["compositeResponse"]
    assert [r["referenceId"] for r in results] == [s["referenceId"] for s in subrequests]
    assert all(r["httpStatusCode"] == 200 and r["httpHeaders"] == {} for r in results)
    by_ref = {r["referenceId"]: r["body"] for r in results}
    assert {obj: by_ref[obj] for obj in POLLED[:3]} == alone
    assert all(body["totalSize"] > 0 and body["records"] == [] for body in alone.values())
    assert by_ref["records"] == records and by_ref["row"] == row and by_ref["deleted"] == deleted


def test_a_query_more_subrequest_continues_a_result_and_headers_reach_the_subrequest(
    salesforce: RunningSandbox,
) -> None:
    """``Sforce-Query-Options`` in a subrequest's httpHeaders sets its batch size; the ``nextRecordsUrl`` it
    returns works as a subrequest of the next composite call ("query more" is a query subrequest)."""
    soql = "SELECT Id FROM Contact ORDER BY Id"
    with rest(salesforce) as client:
        whole = client.get("/query", params={"q": soql}).json()
        first = client.post("/composite", json={"compositeRequest": [
            query_sub("first", soql, headers={"Sforce-Query-Options": "batchSize=200"})]}).json()
        page = first["compositeResponse"][0]["body"]
        assert len(page["records"]) == 200 and not page["done"]
        more = client.post("/composite", json={"compositeRequest": [
            {"method": "GET", "url": page["nextRecordsUrl"], "referenceId": "more",
             "httpHeaders": {"Sforce-Query-Options": "batchSize=2000"}}]}).json()
    rest_page = more["compositeResponse"][0]["body"]
    assert more["compositeResponse"][0]["httpStatusCode"] == 200 and rest_page["done"]
    assert [r["Id"] for r in page["records"] + rest_page["records"]] == [r["Id"] for r in whole["records"]]


def test_six_query_subrequests_or_twenty_six_subrequests_are_refused_whole(salesforce: RunningSandbox) -> None:
    """Up to 25 subrequests, at most 5 of them queries (query, queryAll, query more): one more and the whole
    request is refused with a 400 in Salesforce's error-list shape, nothing run (issue 14)."""
    six = [query_sub(obj, count_query(obj)) for obj in POLLED]
    row = {"method": "GET", "url": f"{DATA}/sobjects/Account/describe"}
    many = [{**row, "referenceId": f"d{i}"} for i in range(26)]
    with rest(salesforce) as client:
        too_many_queries = client.post("/composite", json={"compositeRequest": six})
        too_many = client.post("/composite", json={"compositeRequest": many})
        five = client.post("/composite", json={"compositeRequest": six[:5] + many[:20]})
    assert too_many_queries.status_code == 400
    error = too_many_queries.json()
    assert isinstance(error, list) and error[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert "up to 5 query" in error[0]["message"] and "contains 6" in error[0]["message"]
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert "up to 25 subrequests" in too_many.json()[0]["message"]
    assert five.status_code == 200 and len(five.json()["compositeResponse"]) == 25  # the limits themselves pass
    assert too_many_queries.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_a_composite_request_is_one_call_in_usage_and_in_the_daily_allocation(salesforce: RunningSandbox) -> None:
    """OPS-2: five COUNT() subrequests are ONE call: ``/__sandbox__/usage`` grows by one (the composite
    endpoint; the query endpoint not at all), ``Sforce-Limit-Info`` by one, and an allocation of two calls
    lets exactly two composite requests through before REQUEST_LIMIT_EXCEEDED."""
    body = {"compositeRequest": [query_sub(obj, count_query(obj)) for obj in POLLED[:5]]}
    with rest(salesforce) as client:
        warm = client.post("/composite", json=body)  # the session is known; the route is in usage
        before = usage(salesforce)
        answer = client.post("/composite", json=body)
        after = usage(salesforce)
    assert warm.status_code == answer.status_code == 200
    assert sum(after.values()) - sum(before.values()) == 1
    assert after[COMPOSITE] - before[COMPOSITE] == 1
    assert after.get("GET /services/data/v{version}/query", 0) == before.get("GET /services/data/v{version}/query", 0)
    used_before = int(warm.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert answer.headers["Sforce-Limit-Info"].startswith(f"api-usage={used_before + 1}/")

    set_faults(salesforce, daily_limit=2)  # a fresh 24 h window of two calls
    with rest(salesforce) as client:
        answers = [client.post("/composite", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert [a.headers["Sforce-Limit-Info"] for a in answers] == ["api-usage=1/2", "api-usage=2/2", "api-usage=2/2"]
    assert answers[2].json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert all(r["httpStatusCode"] == 200 for r in answers[1].json()["compositeResponse"])


def test_failures_malformed_bodies_and_all_or_none(salesforce: RunningSandbox) -> None:
    """A subrequest's failure is its own (the resource's error list and status) unless ``allOrNone``, which
    turns every other result into a 400; a body that is not a composite request is the JSON parser's error;
    what the sandbox does not emulate (writes) is refused per subrequest, an unknown URL is a 404."""
    good = query_sub("good", count_query("Lead"))
    bad = query_sub("bad", "SELECT FROM Lead")
    with rest(salesforce) as client:
        partial = client.post("/composite", json={"allOrNone": False, "compositeRequest": [good, bad]}).json()
        whole = client.post("/composite", json={"allOrNone": True, "compositeRequest": [good, bad]}).json()
        malformed = client.post("/composite", content=b'{"compositeRequest": [', headers={
            "Content-Type": "application/json"})
        not_composite = client.post("/composite", json={"batchRequests": []})
        odd = client.post("/composite", json={"compositeRequest": [
            {"method": "POST", "url": f"{DATA}/sobjects/Account", "referenceId": "write", "body": {"Name": "x"}},
            {"method": "GET", "url": f"{DATA}/nowhere", "referenceId": "nowhere"},
        ]}).json()
    ok, failed = partial["compositeResponse"]
    assert ok["httpStatusCode"] == 200 and ok["body"]["totalSize"] >= 0
    assert failed["httpStatusCode"] == 400 and failed["body"][0]["errorCode"] == "MALFORMED_QUERY"
    halted, failed_too = whole["compositeResponse"]
    assert halted["httpStatusCode"] == 400 and halted["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert failed_too["body"][0]["errorCode"] == "MALFORMED_QUERY"
    assert malformed.status_code == 400 and malformed.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert not_composite.status_code == 400 and not_composite.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    write, nowhere = odd["compositeResponse"]
    assert write["httpStatusCode"] == 405 and write["body"][0]["errorCode"] == "METHOD_NOT_ALLOWED"
    assert nowhere["httpStatusCode"] == 404 and nowhere["body"][0]["errorCode"] == "NOT_FOUND"


def test_simple_salesforce_sends_a_composite_request(salesforce: RunningSandbox) -> None:
    """The vendor SDK's generic call (``restful``) reaches the resource and reads its answer (issue 14)."""
    sf = sdk(salesforce)
    answer = sf.restful("composite", method="POST", json={
        "compositeRequest": [query_sub(obj, count_query(obj)) for obj in POLLED[:2]]})
    with rest(salesforce) as client:
        alone = [client.get("/query", params={"q": count_query(obj)}).json()["totalSize"] for obj in POLLED[:2]]
    assert [r["body"]["totalSize"] for r in answer["compositeResponse"]] == alone

"""Issue 16, Salesforce: header names as Salesforce spells them; Bulk API 2.0 query jobs that take time.

Over HTTPS against the shared sandbox; simple-salesforce where it covers the behaviour, raw httpx for the
wire (exact header bytes). FACTS §n is shared/specs/salesforce/FACTS.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.salesforce.conftest import rest, sdk


def raw_names(response: httpx.Response) -> set[str]:
    """Header names exactly as they came over the wire (httpx keeps the original bytes in ``.raw``)."""
    return {name.decode() for name, _ in response.headers.raw}


@pytest.fixture
def slow_bulk(salesforce: RunningSandbox) -> Iterator[RunningSandbox]:
    """Bulk query jobs that take 1.5 s, as on a real org; back to instant afterwards."""
    with salesforce.admin() as admin:
        admin.put("/settings", json={"bulk_query_seconds": 1.5}).raise_for_status()
    yield salesforce
    with salesforce.admin() as admin:
        admin.put("/settings", json={"bulk_query_seconds": 0}).raise_for_status()


def test_header_names_are_spelled_as_salesforce_sends_them(salesforce: RunningSandbox) -> None:
    """``Content-Type``, ``Sforce-Limit-Info``, ``Sforce-Locator``, ``Sforce-NumberOfRecords``: clients that
    look headers up case-sensitively find them (issue 16; FACTS §15)."""
    with rest(salesforce) as client:
        answer = client.get("/query", params={"q": "SELECT Id FROM Contact LIMIT 1"})
        assert {"Content-Type", "Sforce-Limit-Info", "Content-Length"} <= raw_names(answer)
        assert not {n for n in raw_names(answer) if n.startswith(("sforce", "content"))}
        job = client.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Contact"}).json()
        results = client.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": 10})
        assert {"Content-Type", "Sforce-Locator", "Sforce-NumberOfRecords"} <= raw_names(results)
        missing = client.get("/sobjects/Contact/003000000000000AAA")
        assert missing.status_code == 404 and "Content-Type" in raw_names(missing)
    with salesforce.admin() as admin:
        admin.put("/faults", json={"rate_503": 1.0}).raise_for_status()
    with rest(salesforce) as client:
        faulted = client.get("/limits")
    assert faulted.status_code == 503 and "Content-Type" in raw_names(faulted)


def test_bulk_query_job_moves_through_its_states_over_time(slow_bulk: RunningSandbox) -> None:
    """UploadComplete → InProgress → JobComplete over the configured run time; no results before (issue 16)."""
    with rest(slow_bulk) as client:
        job = client.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Contact"}).json()
        assert job["state"] == "UploadComplete"
        early = client.get(f"/jobs/query/{job['id']}/results")
        assert early.status_code == 400 and early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = client.get(f"/jobs/query/{job['id']}").json()
            if not seen or seen[-1] != status["state"]:
                seen.append(status["state"])
            if status["state"] == "JobComplete":
                break
            time.sleep(0.1)
        assert seen == ["UploadComplete", "InProgress", "JobComplete"]
        assert status["numberRecordsProcessed"] > 0
        assert client.get(f"/jobs/query/{job['id']}/results").status_code == 200


def test_simple_salesforce_polls_a_slow_bulk_job_to_completion(slow_bulk: RunningSandbox) -> None:
    """simple-salesforce's bulk2 query waits, polls until JobComplete and then reads every row."""
    with slow_bulk.admin() as admin:
        live = admin.get("/stats").json()["Contact"]["live"]
        before = admin.get("/usage").json()["endpoints"]
    started = time.monotonic()
    pages = list(sdk(slow_bulk).bulk2.Contact.query("SELECT Id FROM Contact", wait=0.2))
    took = time.monotonic() - started
    rows = sum(page.count("\n") - 1 for page in pages)
    with slow_bulk.admin() as admin:
        after = admin.get("/usage").json()["endpoints"]
    polls = sum(n - before.get(k, 0) for k, n in after.items() if k.startswith("GET") and k.endswith("{job_id}"))
    assert rows == live
    assert took >= 1.5 and polls >= 3  # it had to come back several times before the job was complete


def test_the_bulk_run_time_setting_is_validated(salesforce: RunningSandbox) -> None:
    """Issue 16: a negative run time is refused; the tests' sandbox runs jobs instantly (suite time)."""
    with salesforce.admin() as admin:
        assert admin.put("/settings", json={"bulk_query_seconds": -1}).status_code == 400
        assert admin.get("/settings").json()["bulk_query_seconds"] == 0


# -- compound address fields (issue 16; FACTS §16) ----------------------------------------------------------
ADDRESS_KEYS = {"city", "country", "geocodeAccuracy", "latitude", "longitude", "postalCode", "state", "street"}


def test_describe_lists_compound_addresses_with_their_components(salesforce: RunningSandbox) -> None:
    """Issue 16: describe lists each standard address as a read-only compound field of type ``address`` and
    names it as ``compoundFieldName`` of its components (FACTS §16), read through simple-salesforce."""
    sf = sdk(salesforce)
    for sobject, compounds in (("Contact", ("MailingAddress", "OtherAddress")), ("Lead", ("Address",)),
                               ("Account", ("BillingAddress", "ShippingAddress"))):
        fields = {f["name"]: f for f in getattr(sf, sobject).describe()["fields"]}
        for name in compounds:
            compound = fields[name]
            assert compound["type"] == "address" and not compound["createable"] and not compound["updateable"]
            assert not compound["filterable"] and not compound["sortable"]
            prefix = name.removesuffix("Address")
            for part in ("Street", "City", "State", "PostalCode", "Country", "Latitude", "Longitude",
                         "GeocodeAccuracy"):
                assert fields[prefix + part]["compoundFieldName"] == name, (sobject, prefix + part)
        assert fields["Id"]["compoundFieldName"] is None


def test_soql_and_rest_return_compound_addresses_as_salesforce_does(salesforce: RunningSandbox) -> None:
    """simple-salesforce reads MailingAddress as a structure of its components, null when all are empty."""
    sf = sdk(salesforce)
    rows = sf.query("SELECT Id, MailingCity, MailingCountry, MailingAddress, OtherAddress, Account.BillingAddress "
                    "FROM Contact WHERE MailingCity != null AND AccountId != null LIMIT 5")["records"]
    assert rows
    for row in rows:
        address = row["MailingAddress"]
        assert set(address) == ADDRESS_KEYS
        assert address["city"] == row["MailingCity"] and address["country"] == row["MailingCountry"]
        assert row["OtherAddress"] is None  # no component set
        billing = row["Account"]["BillingAddress"]
        assert billing is None or set(billing) == ADDRESS_KEYS
    record = sf.Contact.get(rows[0]["Id"])
    assert record["MailingAddress"] == rows[0]["MailingAddress"] and record["OtherAddress"] is None
    created = sf.Lead.create({"LastName": "Compound", "Company": "Acme", "Street": "1 Main St", "City": "Springfield"})
    lead = sf.Lead.get(created["id"])
    assert lead["Address"]["street"] == "1 Main St" and lead["Address"]["city"] == "Springfield"
    assert lead["Address"]["postalCode"] is None


def test_compound_addresses_are_read_only_and_not_filterable(salesforce: RunningSandbox) -> None:
    """Issue 16: compound fields cannot be filtered, sorted or written, only their components (FACTS §16)."""
    with rest(salesforce) as client:
        for soql in ("SELECT Id FROM Contact WHERE MailingAddress != null", "SELECT Id FROM Contact ORDER BY "
                     "MailingAddress"):
            r = client.get("/query", params={"q": soql})
            assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD", r.text
        write = client.post("/sobjects/Contact", json={"LastName": "X", "MailingAddress": {"city": "Paris"}})
        assert write.status_code == 400 and "MailingAddress" in write.text


def test_bulk_queries_refuse_compound_fields(salesforce: RunningSandbox) -> None:
    """Compound fields cannot be exported: a Bulk API 2.0 query naming one is refused; components work."""
    with rest(salesforce) as client:
        refused = client.post("/jobs/query", json={"operation": "query",
                                                   "query": "SELECT Id, MailingAddress FROM Contact"})
        assert refused.status_code == 400
        assert "Compound data not supported in Bulk Query" in refused.json()[0]["message"]
        fine = client.post("/jobs/query", json={"operation": "query", "query": "SELECT Id, MailingCity FROM Contact"})
        assert fine.status_code == 200

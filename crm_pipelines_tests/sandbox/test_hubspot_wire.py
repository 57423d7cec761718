"""What a client sees on the wire: auth errors, both rate limits, every fault kind, admin endpoints.

Limits, headers and bodies are checked against shared/specs/hubspot/FACTS.md (cited as FACTS §n).
"""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

CONTACTS = "/crm/v3/objects/contacts"


def set_faults(sandbox: RunningSandbox, **config: object) -> None:
    with sandbox.admin() as admin:
        admin.put("/faults", json=config).raise_for_status()


def test_missing_or_unknown_token_gets_hubspots_401(hubspot: RunningSandbox) -> None:
    """FACTS §7: 401 with X-HubSpot-Auth-Failure and category INVALID_AUTHENTICATION."""
    for headers in ({}, {"Authorization": "Bearer pat-na1-00000000-0000-0000-0000-000000000000"}):
        r = httpx.get(hubspot.hubspot_url + CONTACTS, headers=headers)
        assert r.status_code == 401
        assert r.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"
        assert r.headers["X-HubSpot-Correlation-Id"]
        body = r.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found.")
        assert str(uuid.UUID(body["correlationId"])) == body["correlationId"]


def test_oauth_refresh_introspection_and_expiry(hubspot: RunningSandbox) -> None:
    oauth = hubspot.info["hubspot"]["credentials"]["oauth"]
    r = httpx.post(oauth["token_url"], data={
        "grant_type": "refresh_token", "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"], "refresh_token": oauth["refresh_token"],
    })
    assert r.status_code == 200
    token = r.json()["access_token"]
    assert r.json()["expires_in"] == 1800
    ok = httpx.get(hubspot.hubspot_url + CONTACTS, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    # OAuth calls carry the interval headers but not the daily ones (FACTS §4).
    assert "X-HubSpot-RateLimit-Max" in ok.headers and "X-HubSpot-RateLimit-Daily" not in ok.headers
    info = httpx.get(f"{hubspot.hubspot_url}/oauth/v1/access-tokens/{token}").json()
    assert "crm.objects.contacts.read" in info["scopes"] and info["token"] == token

    with hubspot.admin() as admin:
        admin.post("/oauth/expire").raise_for_status()
    expired = httpx.get(hubspot.hubspot_url + CONTACTS, headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert expired.json()["message"].startswith("The OAuth token used to make this call expired")
    assert list(expired.json()["context"]) == ["expire time"]

    bad = httpx.post(oauth["token_url"], data={"grant_type": "refresh_token", "client_id": oauth["client_id"],
                                               "client_secret": oauth["client_secret"], "refresh_token": "nope"})
    assert bad.status_code == 400 and bad.json()["status"] == "BAD_REFRESH_TOKEN"

    with hubspot.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
    # A reset forgets issued access tokens; the private-app token and the OAuth client stay valid.
    gone = httpx.get(hubspot.hubspot_url + CONTACTS, headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
    assert gone.json()["category"] == "INVALID_AUTHENTICATION"
    with hubspot.api() as client:
        assert client.get(CONTACTS, params={"limit": 1}).status_code == 200


def test_ten_secondly_limit_with_headers_and_429_body(hubspot: RunningSandbox) -> None:
    """FACTS §4: X-HubSpot-RateLimit-* headers; 429 with policyName TEN_SECONDLY_ROLLING."""
    set_faults(hubspot, rate_limit_multiplier=0.05)  # 190 * 0.05 = 9 calls per 10 s
    with hubspot.api() as client:
        answers = [client.get(CONTACTS, params={"limit": 1}) for _ in range(10)]
    first = answers[0]
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Max"] == "9"
    assert [int(a.headers["X-HubSpot-RateLimit-Remaining"]) for a in answers[:9]] == list(range(8, -1, -1))
    assert int(first.headers["X-HubSpot-RateLimit-Daily"]) == 31_250
    throttled = answers[9]
    assert throttled.status_code == 429
    body = throttled.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["status"] == "error" and body["correlationId"] and body["requestId"]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 10


def test_daily_limit(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, daily_limit=3)
    with hubspot.api() as client:
        answers = [client.get(CONTACTS, params={"limit": 1}) for _ in range(4)]
    assert [a.headers.get("X-HubSpot-RateLimit-Daily-Remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert answers[3].status_code == 429
    assert answers[3].json()["policyName"] == "DAILY"
    assert answers[3].json()["message"] == "You have reached your daily limit."


def test_search_has_its_own_per_second_limit_and_no_rate_headers(hubspot: RunningSandbox) -> None:
    """FACTS §2: 5 searches per second, exempt from the 10-second bucket, no X-HubSpot-RateLimit headers."""
    set_faults(hubspot, rate_limit_multiplier=0.05)
    with hubspot.api() as client:
        answers = [client.post(f"{CONTACTS}/search", json={"limit": 1}) for _ in range(12)]
        listing = client.get(CONTACTS, params={"limit": 1})
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 200 and 429 in statuses
    assert all(not any(h.lower().startswith("x-hubspot-ratelimit") for h in a.headers) for a in answers)
    limited = answers[statuses.index(429)].json()
    assert limited["policyName"] == "SECONDLY" and limited["message"] == "You have reached your secondly limit."
    assert listing.status_code == 200  # searches did not use up the 10-second bucket


def test_lifted_rate_limits(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_limits_enabled=False)
    with hubspot.api() as client:
        answers = [client.post(f"{CONTACTS}/search", json={"limit": 1}) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_injected_server_errors(hubspot: RunningSandbox, status: int) -> None:
    set_faults(hubspot, **{f"rate_{status}": 1.0})
    with hubspot.api() as client:
        r = client.get(CONTACTS)
    assert r.status_code == status
    assert r.json()["status"] == "error" and r.json()["correlationId"]


def test_injected_429_looks_like_the_real_one(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_429=1.0)
    with hubspot.api() as client:
        r = client.get(CONTACTS)
    assert r.status_code == 429 and r.json()["policyName"] == "TEN_SECONDLY_ROLLING" and r.headers["Retry-After"]


def test_injected_timeout(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_timeout=1.0, timeout_seconds=3)
    with hubspot.api(timeout=0.5) as client, pytest.raises(httpx.ReadTimeout):
        client.get(CONTACTS)


def test_injected_dropped_connection(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_drop=1.0)
    with hubspot.api() as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(CONTACTS)


def test_injected_malformed_body(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_malformed=1.0)
    with hubspot.api() as client:
        r = client.get(CONTACTS, params={"limit": 5})
    assert r.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)


def test_added_latency(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, latency_ms=300)
    with hubspot.api() as client:
        started = time.monotonic()
        client.get(CONTACTS, params={"limit": 1}).raise_for_status()
    assert time.monotonic() - started >= 0.3


def test_fault_rates_and_path_filter(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_503=0.5, seed=1, path_prefix="/crm/v3/objects/companies")
    with hubspot.api() as client:
        contacts = [client.get(CONTACTS, params={"limit": 1}).status_code for _ in range(20)]
        companies = [client.get("/crm/v3/objects/companies", params={"limit": 1}).status_code for _ in range(40)]
    assert set(contacts) == {200}
    assert 5 <= companies.count(503) <= 35 and 200 in companies


def test_admin_is_never_faulted_and_config_is_validated(hubspot: RunningSandbox) -> None:
    set_faults(hubspot, rate_500=1.0)
    with hubspot.admin() as admin:
        assert admin.get("/stats").status_code == 200
        assert admin.put("/faults", json={"rate_500": 2}).status_code == 400
        assert admin.put("/faults", json={"rate_5OO": 1}).status_code == 400


def test_usage_counts_calls_per_endpoint_since_reset(hubspot: RunningSandbox) -> None:
    with hubspot.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
        assert admin.get("/usage").json() == {"total": 0, "endpoints": {}}
        with hubspot.api() as client:
            client.get(CONTACTS)
            client.get(f"{CONTACTS}/123")
            client.get(f"{CONTACTS}/456")
            client.post(f"{CONTACTS}/search", json={})
        usage = admin.get("/usage").json()
    assert usage["endpoints"] == {
        "GET /crm/v3/objects/{object_type}": 1,
        "GET /crm/v3/objects/{object_type}/{object_id}": 2,
        "POST /crm/v3/objects/{object_type}/search": 1,
    }
    assert usage["total"] == 4


def test_stats_shape_and_deletions(hubspot: RunningSandbox) -> None:
    """Stats keyed by the API's own object names, with live and deleted counts."""
    with hubspot.admin() as admin, hubspot.api() as client:
        before = admin.get("/stats").json()
        created = client.post(CONTACTS, json={"properties": {"email": f"del.{uuid.uuid4().hex[:6]}@example.com"}})
        contact_id = created.json()["id"]
        client.delete(f"{CONTACTS}/{contact_id}").raise_for_status()
        after = admin.get("/stats").json()
        archived = client.get(CONTACTS, params={"archived": "true", "limit": 100}).json()["results"]
    assert set(before) >= {"contacts", "companies", "deals", "tasks"}
    assert after["contacts"] == {"live": before["contacts"]["live"], "deleted": before["contacts"]["deleted"] + 1}
    gone = next(r for r in archived if r["id"] == contact_id)
    assert gone["archived"] is True and gone["archivedAt"]


def test_ui_edit_bumps_modification_time_like_hubspot(hubspot: RunningSandbox) -> None:
    with hubspot.api() as client, hubspot.admin() as admin:
        contact = client.post(CONTACTS, json={"properties": {"email": f"ui.{uuid.uuid4().hex[:6]}@example.com"}}).json()
        before = client.get(f"{CONTACTS}/{contact['id']}").json()
        same_email = {"properties": {"email": contact["properties"]["email"]}}
        same = admin.patch(f"/ui/contacts/{contact['id']}", json=same_email)
        unchanged = client.get(f"{CONTACTS}/{contact['id']}").json()
        admin.patch(f"/ui/contacts/{contact['id']}", json={"properties": {"jobtitle": "CFO"}}).raise_for_status()
        after = client.get(f"{CONTACTS}/{contact['id']}", params={"properties": "jobtitle,lastmodifieddate"}).json()
        search = client.post(f"{CONTACTS}/search", json={"filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GT",
             "value": before["properties"]["lastmodifieddate"]}]}], "properties": ["jobtitle"]}).json()
        admin.delete(f"/ui/contacts/{contact['id']}").raise_for_status()
        deleted = client.get(f"{CONTACTS}/{contact['id']}")
    assert same.status_code == 200 and unchanged["updatedAt"] == before["updatedAt"]
    assert after["updatedAt"] > before["updatedAt"]
    assert after["properties"]["lastmodifieddate"] == after["updatedAt"]
    assert after["properties"]["jobtitle"] == "CFO"
    assert contact["id"] in {r["id"] for r in search["results"]}
    assert deleted.status_code == 404


def test_legacy_endpoints_existing_tools_call(hubspot: RunningSandbox) -> None:
    with hubspot.api() as client:
        props = client.get("/properties/v2/contacts/properties").json()
        pipelines = client.get("/crm-pipelines/v1/pipelines/deals").json()
    email = next(p for p in props if p["name"] == "email")
    assert email["type"] == "string" and email["readOnlyValue"] is False and email["groupName"]
    default = next(p for p in pipelines["results"] if p["pipelineId"] == "default")
    assert default["objectType"] == "DEAL" and default["stages"][0]["stageId"] == "appointmentscheduled"
    assert default["stages"][-1]["metadata"]["probability"] == "0.0"


def test_state_persists_across_restarts_and_reset_starts_over(tmp_path) -> None:
    first = start_sandbox(tmp_path, scale=150)
    try:
        with first.api() as client:
            created = client.post(CONTACTS, json={"properties": {"email": "kept@example.com"}}).json()
        token = first.token
    finally:
        first.stop()
    second = start_sandbox(tmp_path, scale=150)
    try:
        assert second.token == token
        with second.api() as client:
            assert client.get(f"{CONTACTS}/{created['id']}").status_code == 200
    finally:
        second.stop()
    third = start_sandbox(tmp_path, "--reset", scale=150)
    try:
        with third.api() as client:
            assert client.get(f"{CONTACTS}/{created['id']}").status_code == 404
    finally:
        third.stop()


def test_https_with_the_generated_ca(tmp_path) -> None:
    """--tls serves HTTPS with a certificate from a local CA; clients verify against the CA bundle."""
    sandbox = start_sandbox(tmp_path, "--tls", scale=150)
    try:
        assert sandbox.hubspot_url.startswith("https://127.0.0.1:")
        assert sandbox.ca_bundle and sandbox.ca_bundle.endswith("ca.pem")
        with pytest.raises(httpx.ConnectError):
            httpx.get(sandbox.hubspot_url + "/__sandbox__/stats", verify=True)
        with sandbox.api() as client:
            assert client.get(CONTACTS, params={"limit": 1}).status_code == 200
        page = sandbox.sdk().crm.contacts.basic_api.get_page(limit=2)
        assert len(page.results) == 2
    finally:
        sandbox.stop()

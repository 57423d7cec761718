"""Auth, service protection limits and every injected fault as a client sees them (FACTS §B, §H)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api, fresh_token, set_faults
from crm_pipelines_tests.sandbox.dynamics.test_dynamics_batch import part, send


def token_request(sandbox: RunningSandbox, **overrides: str) -> httpx.Response:
    creds = sandbox.credentials
    form = {"grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"], "scope": creds["scope"], **overrides}
    url = overrides.pop("url", None) or creds["token_url"]
    form.pop("url", None)
    return httpx.post(url, data=form, verify=sandbox.verify)


def test_token_endpoint_answers_like_entra_id(dynamics: RunningSandbox) -> None:
    """FACTS §B: client credentials with scope `<org>/.default` -> Bearer token, expires_in 3599."""
    creds = dynamics.credentials
    assert creds["token_url"] == f"{dynamics.base_url}/{creds['tenant_id']}/oauth2/v2.0/token"
    assert creds["scope"] == f"{dynamics.base_url}/.default" and creds["org_url"] == dynamics.base_url
    r = token_request(dynamics)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    bad_secret = token_request(dynamics, client_secret="wrong")
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert bad_secret.json()["error_codes"] == [7000215]
    assert bad_secret.json()["error_description"].startswith("AADSTS7000215:")
    assert token_request(dynamics, scope="https://elsewhere.crm.dynamics.com/.default").json()["error"] == \
        "invalid_scope"
    assert token_request(dynamics, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert token_request(dynamics, url=f"{dynamics.base_url}/other-tenant/oauth2/v2.0/token").status_code == 400


def test_missing_unknown_and_expired_tokens_get_401(dynamics: RunningSandbox) -> None:
    api_url = dynamics.credentials["api_url"]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = httpx.get(f"{api_url}/contacts", headers=headers, verify=dynamics.verify)
        assert r.status_code == 401 and r.content == b""
        assert r.headers["WWW-Authenticate"].startswith("Bearer ")
        assert f"login.microsoftonline.com/{dynamics.credentials['tenant_id']}" in r.headers["WWW-Authenticate"]
    token = fresh_token(dynamics)
    with api(dynamics, token) as client:
        assert client.get("contacts", params={"$top": "1"}).status_code == 200
        with dynamics.admin() as admin:
            admin.post("/oauth/expire").raise_for_status()
        expired = client.get("contacts", params={"$top": "1"})
    assert expired.status_code == 401 and "expired" in expired.headers["WWW-Authenticate"]
    with api(dynamics, dynamics.credentials["access_token"]) as client:  # the announced token stays valid
        assert client.get("contacts", params={"$top": "1"}).status_code == 200


def test_requests_per_window_limit(dynamics: RunningSandbox) -> None:
    """FACTS §H: 6,000 per 5 minutes per user -> 429, Retry-After, 0x80072322 (scaled to 6 here)."""
    set_faults(dynamics, rate_limit_multiplier=0.001)
    with api(dynamics) as client:
        answers = [client.get("WhoAmI") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 6 + [429]
    assert [a.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] for a in answers[:6]] == \
        ["5", "4", "3", "2", "1", "0"]
    assert float(answers[0].headers["x-ms-ratelimit-time-remaining-xrm-requests"]) <= 1200
    throttled = answers[6]
    assert throttled.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 6 over time window of 300 seconds.",
    }
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300


def test_execution_time_limit(dynamics: RunningSandbox) -> None:
    """FACTS §H: combined execution time over the window -> 429 0x80072321."""
    set_faults(dynamics, rate_limit_multiplier=0.000001)  # 1.2 ms of execution time per 5 minutes
    with api(dynamics) as client:
        # One request doing many reads: its execution time is theirs combined, well over a millisecond however
        # fast a single page of the test data renders.
        first = send(client, [part("GET", "contacts") for _ in range(50)])
        second = client.get("WhoAmI")
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "0x80072321"
    assert second.json()["error"]["message"].startswith("Combined execution time of incoming requests exceeded")
    assert int(second.headers["Retry-After"]) >= 1


def test_lifted_limits(dynamics: RunningSandbox) -> None:
    set_faults(dynamics, rate_limits_enabled=False, rate_limit_multiplier=0.001)
    with api(dynamics) as client:
        assert all(client.get("WhoAmI").status_code == 200 for _ in range(10))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_faults(dynamics: RunningSandbox, status: int) -> None:
    with api(dynamics) as client:  # the token first: the token endpoint is faulted too, as login can fail
        set_faults(dynamics, **{f"rate_{status}": 1.0})
        r = client.get("contacts")
    assert r.status_code == status and r.json()["error"]["code"] == "0x80040216"


def test_throttle_fault_looks_like_service_protection(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        set_faults(dynamics, rate_429=1.0)
        r = client.get("contacts")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072322"
    assert int(r.headers["Retry-After"]) >= 1


def test_timeout_drop_malformed_and_latency_faults(dynamics: RunningSandbox) -> None:
    token = fresh_token(dynamics)
    with api(dynamics, token) as client:
        set_faults(dynamics, rate_timeout=1.0, timeout_seconds=0.3)
        started = time.monotonic()
        r = client.get("contacts")
        assert r.status_code == 504 and time.monotonic() - started >= 0.3
        set_faults(dynamics, rate_drop=1.0)
        with pytest.raises(httpx.TransportError):
            client.get("contacts")
    with api(dynamics, token) as client:
        set_faults(dynamics, rate_malformed=1.0)
        r = client.get("contacts", params={"$top": "5"})
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        set_faults(dynamics, latency_ms=200)
        started = time.monotonic()
        assert client.get("WhoAmI").status_code == 200
        assert time.monotonic() - started >= 0.2
        set_faults(dynamics, rate_503=1.0, path_prefix="/api/data/v9.2/accounts")
        assert client.get("contacts", params={"$top": "1"}).status_code == 200
        assert client.get("accounts", params={"$top": "1"}).status_code == 503


def test_admin_stats_usage_and_manifest(pristine_dynamics: RunningSandbox) -> None:
    sandbox = pristine_dynamics
    with sandbox.admin() as admin:
        stats = admin.get("/stats").json()
        manifest = admin.get("/manifest").json()["crms"]["dynamics"]
    assert set(stats) == {"contacts", "leads", "accounts", "opportunities", "systemusers"}
    assert stats["contacts"] == {"live": manifest["contact"], "deleted": 0}
    assert stats["leads"]["live"] == manifest["lead"] and stats["accounts"]["live"] == manifest["account"]
    assert stats["opportunities"]["live"] == manifest["opportunity"]
    assert stats["systemusers"]["live"] == manifest["systemuser"]
    with api(sandbox) as client:
        parents = client.get("opportunities", params={"$filter": "_parentcontactid_value ne null", "$count": "true",
                                                      "$select": "name"}).json()["@odata.count"]
        assert parents == manifest["opportunity_parentcontact"]
        for _ in range(2):
            client.get(f"contacts({'0' * 8}-0000-0000-0000-{'0' * 12})")
    with sandbox.admin() as admin:
        usage = admin.get("/usage").json()["endpoints"]
    assert usage["GET /api/data/v9.2/{entity_set}({key})"] == 2
    assert usage["GET /api/data/v9.2/{entity_set}"] == 1


def test_concurrent_requests_limit(dynamics: RunningSandbox) -> None:
    """FACTS §H: 52 concurrent requests per user -> 429 0x80072326 (scaled to 1 here).

    The first request holds its slot while its body is still arriving; a second one meanwhile is refused.
    """
    token = fresh_token(dynamics)
    set_faults(dynamics, rate_limit_multiplier=0.02)
    first: list[httpx.Response] = []

    def slow_body():
        yield b'{"name": "Slow '
        time.sleep(0.8)
        yield b'upload"}'

    with api(dynamics, token) as slow, api(dynamics, token) as fast:
        thread = threading.Thread(target=lambda: first.append(
            slow.post("accounts", content=slow_body(), headers={"Content-Type": "application/json"})))
        thread.start()
        time.sleep(0.3)
        second = fast.get("WhoAmI")
        thread.join()
        after = fast.get("WhoAmI")
    assert first[0].status_code == 204
    assert second.status_code == 429
    assert second.json()["error"] == {"code": "0x80072326",
                                      "message": "Number of concurrent requests exceeded the limit of 1."}
    assert int(second.headers["Retry-After"]) >= 1
    assert after.status_code == 200

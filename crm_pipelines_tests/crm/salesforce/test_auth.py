"""Issue 5 (Salesforce) OAuth, login hosts (OPS-3), re-login on INVALID_SESSION_ID, /limits and the daily
allocation (OPS-2), describe, and secrets kept out of logs and exception texts (OPS-3, DESIGN invariant 5)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crm_pipelines.crm.errors import ApiError, AuthenticationError, RetriesExhausted
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.api import RequestLimitExceeded
from crm_pipelines.crm.salesforce.auth import (
    LOGIN_HOSTS,
    ClientCredentials,
    JwtBearer,
    OAuthLogin,
    RefreshToken,
    SessionToken,
    login_url,
    make_auth,
)
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines_tests.crm.salesforce.conftest import LoginHostsToSandbox, client, set_faults
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def flows(sandbox: RunningSandbox, **hosts) -> dict:
    creds = sandbox.credentials
    where = hosts or {"login_url": sandbox.base_url}
    return {
        "client_credentials": ClientCredentials("salesforce", creds["consumer_key"], creds["consumer_secret"], **where),
        "jwt_bearer": JwtBearer(
            "salesforce",
            creds["consumer_key"],
            creds["username"],
            Path(creds["private_key_file"]).read_text(),
            **where,
        ),
        "refresh_token": RefreshToken(
            "salesforce", creds["consumer_key"], creds["refresh_token"], creds["consumer_secret"], **where
        ),
    }


@pytest.mark.parametrize("flow", ["client_credentials", "jwt_bearer", "refresh_token"])
def test_each_flow_logs_in_again_when_the_session_expires(sf: RunningSandbox, flow: str) -> None:
    """Issue 5: OAuth by client credentials / JWT bearer / refresh token; after POST /__sandbox__/oauth/expire
    the next call meets 401 INVALID_SESSION_ID, logs in again and goes through. Both logins are metered
    calls (issue 18, invariant 3)."""
    TOKENS.clear()  # no session left by an earlier test: this one starts logged out
    auth = flows(sf)[flow]
    meter = Meter()

    async def run():
        async with client(sf, meter, auth=auth) as sfc:
            before = await sfc.limits()
            with sf.admin() as admin:
                admin.post("/oauth/expire").raise_for_status()
            after = await sfc.limits()
            return before, after

    before, after = asyncio.run(run())
    assert before.keys() == after.keys() and auth.logins == 2
    assert [c.status for c in meter.calls if c.endpoint != OAuthLogin.endpoint] == [200, 401, 200]
    assert meter.count(endpoint=OAuthLogin.endpoint) == 2
    assert auth.instance_url == sf.base_url  # learnt from the token response


@pytest.mark.parametrize("org", ["production", "sandbox"])
def test_login_goes_to_the_production_or_the_sandbox_login_host(sf: RunningSandbox, org: str) -> None:
    """OPS-3: `login: production|sandbox` picks login.salesforce.com or test.salesforce.com (the JWT audience
    follows it); an overriding login URL (My Domain) wins for the host but not for the audience."""
    assert login_url(org) == LOGIN_HOSTS[org]
    assert login_url(org, "https://acme.my.salesforce.com/") == "https://acme.my.salesforce.com"
    creds = sf.credentials

    async def run():
        routed = LoginHostsToSandbox(sf)
        async with httpx.AsyncClient(transport=routed) as login_http:
            for auth in flows(sf, login=org, http=login_http).values():
                async with client(sf, auth=auth) as sfc:
                    assert "DailyApiRequests" in await sfc.limits()
        return routed.hosts_seen

    hosts = asyncio.run(run())
    assert hosts == [LOGIN_HOSTS[org].removeprefix("https://")] * 3
    key = Path(creds["private_key_file"]).read_text()
    mydomain = JwtBearer("sf", creds["consumer_key"], "u@x", key, login=org, login_url="https://acme.my.salesforce.com")
    assert mydomain.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    claims = jwt.decode(mydomain.assertion(), options={"verify_signature": False})
    assert claims["aud"] == LOGIN_HOSTS[org] and claims["sub"] == "u@x" and claims["iss"] == creds["consumer_key"]


def test_limits_are_read_back_and_a_spent_allocation_defers_the_work(sf: RunningSandbox) -> None:
    """Issue 5 /limits and OPS-2: usage read back from /limits and Sforce-Limit-Info; a spent daily allocation
    is a 403 REQUEST_LIMIT_EXCEEDED raised at once as RequestLimitExceeded (not retried for hours)."""
    meter = Meter()

    async def run():
        async with client(sf, meter) as sfc:
            limits = await sfc.limits()
            usage = (sfc.usage.used, sfc.usage.allocation)
            set_faults(sf, daily_limit=3)
            outcomes = []
            for _ in range(5):
                try:
                    await sfc.limits()
                    outcomes.append("ok")
                except RequestLimitExceeded as error:
                    outcomes.append(str(error))
            return limits, usage, outcomes

    limits, usage, outcomes = asyncio.run(run())
    assert limits["DailyApiRequests"]["Max"] == usage[1] == 100_000
    assert limits["DailyApiRequests"]["Remaining"] == usage[1] - usage[0]
    assert outcomes[:3] == ["ok"] * 3
    assert all("REQUEST_LIMIT_EXCEEDED" in o and "deferred" in o for o in outcomes[3:])
    assert meter.statuses()[403] == 2  # one attempt each: no retries against the allocation


def test_describe_reports_picklists_record_types_and_the_state_country_setting(sf: RunningSandbox) -> None:
    """Issue 5 describe: picklists, record types, whether state/country picklists are on (CON-10)."""

    async def run():
        async with client(sf) as sfc:
            opportunity = await sfc.describe("Opportunity")
            off = await sfc.state_country_picklists()
            with sf.admin() as admin:
                admin.put("/settings", json={"state_country_picklists": True}).raise_for_status()
            try:
                account = await sfc.describe("Account", refresh=True)
            finally:
                with sf.admin() as admin:
                    admin.put("/settings", json={"state_country_picklists": False}).raise_for_status()
            return opportunity, off, account

    opportunity, off, account = asyncio.run(run())
    assert "Prospecting" in opportunity.picklists["StageName"]
    assert {"Sales", "Enterprise"} <= {r.developer_name for r in opportunity.record_types}
    assert opportunity.fields["Name"].length == 120 and opportunity.fields["CloseDate"].type == "date"
    assert off is False and account.state_country_picklists is True
    assert "US" in account.picklists["BillingCountryCode"]


def test_no_secret_reaches_logs_or_exception_texts(sf: RunningSandbox, caplog: pytest.LogCaptureFixture) -> None:
    """OPS-3 / invariant 5: refused logins, a refused session, exhausted retries and API errors name the
    connection, endpoint and the API's error, never a secret (client secret, refresh token, key, session)."""
    creds = sf.credentials
    key_pem = Path(creds["private_key_file"]).read_text()
    other_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    sessions: list[str] = []

    async def expect(auth, error_type: type[Exception], **options) -> None:
        async with client(sf, auth=auth, **options) as sfc:
            with pytest.raises(error_type) as caught:
                await sfc.limits()
            texts.append(str(caught.value))
            sessions.extend(auth.secrets())

    async def run():
        where = {"login_url": sf.base_url}
        await expect(
            ClientCredentials("sf", creds["consumer_key"], creds["consumer_secret"] + "x", **where), AuthenticationError
        )
        await expect(
            RefreshToken("sf", creds["consumer_key"], creds["refresh_token"] + "x", **where), AuthenticationError
        )
        await expect(JwtBearer("sf", creds["consumer_key"], creds["username"], other_key, **where), AuthenticationError)
        await expect(SessionToken(creds["access_token"][:-4] + "nope", sf.base_url), AuthenticationError)
        set_faults(sf, rate_503=1.0, path_prefix="/services/data/")
        good = flows(sf)["jwt_bearer"]
        await expect(good, RetriesExhausted, backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=3)
        set_faults(sf)
        async with client(sf, auth=good) as sfc:
            with pytest.raises(ApiError) as caught:
                await sfc.describe("Nothing")
            texts.append(str(caught.value))
            sessions.extend(good.secrets())

    asyncio.run(run())
    assert "invalid_client" in texts[0] and "invalid_grant" in texts[1] and "invalid_grant" in texts[2]
    assert "HTTP 401 INVALID_SESSION_ID" in texts[3]
    assert "gave up after 3 attempts" in texts[4] and "HTTP 503" in texts[4]
    assert "HTTP 404 NOT_FOUND" in texts[5]
    everything = "\n".join(texts + [r.getMessage() for r in caplog.records])
    assert "retrying" in everything  # the retries were logged …
    secrets = [creds["consumer_secret"], creds["refresh_token"], creds["access_token"], *sessions]
    secrets += [line for line in (key_pem + other_key).splitlines() if "-----" not in line]
    for secret in secrets:
        assert secret[8:] not in everything  # … and no secret, not even in part


def test_the_flow_follows_the_secrets_given() -> None:
    """OPS-3: JWT bearer when a username and key are set, else the refresh token, else client credentials;
    a missing login is reported by what is missing, never by a value."""
    assert isinstance(make_auth("sf", client_id="id", username="u", private_key_pem="k", refresh_token="r"), JwtBearer)
    assert isinstance(make_auth("sf", client_id="id", refresh_token="r", client_secret="s"), RefreshToken)
    chosen = make_auth("sf", client_id="id", client_secret="s", login="sandbox")
    assert isinstance(chosen, ClientCredentials) and chosen.token_url.startswith(LOGIN_HOSTS["sandbox"])
    with pytest.raises(ValueError, match="no Salesforce login possible"):
        make_auth("sf", client_id="id")
    with pytest.raises(ValueError, match="client id"):
        make_auth("sf", client_id=None, client_secret="s3cr3t")

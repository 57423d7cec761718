"""Issue 18 (Salesforce): a login is an API call like any other. Every fault kind the sandbox injects on the
OAuth token endpoint (throttle, 500, 503, a hung request, a dropped connection, a body cut short) is retried
in each flow, and the read completes with every record once; only an OAuth refusal is an authentication
error, raised at once with the API's reason (OPS-3). Bulk API result pages under every fault kind at once,
with the session expiring mid-read, still give every record once (OPS-1, DESIGN invariant 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.auth import TOKEN_PATH, ClientCredentials, JwtBearer, OAuthLogin, RefreshToken
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines_tests.crm.faulty_logins import (
    FAST,
    KINDS,
    SOAK_MIX,
    VirtualTime,
    failing,
    set_faults,
    statuses,
)
from crm_pipelines_tests.crm.salesforce.conftest import client, stats
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

RESULTS = "GET /services/data/vXX.X/jobs/query/{id}/results"


def login(sandbox: RunningSandbox, flow: str, **changes: str) -> OAuthLogin:
    creds = {**sandbox.credentials, **changes}
    where = {"login_url": sandbox.base_url}
    if flow == "client_credentials":
        return ClientCredentials("salesforce", creds["consumer_key"], creds["consumer_secret"], **where)
    if flow == "jwt_bearer":
        key = Path(creds["private_key_file"]).read_text()
        return JwtBearer("salesforce", creds["consumer_key"], creds["username"], key, **where)
    return RefreshToken("salesforce", creds["consumer_key"], creds["refresh_token"], creds["consumer_secret"], **where)


async def contacts_by_bulk(sfc, on_page=None) -> list[dict]:
    fields = (await sfc.describe("Contact")).fields
    records: list[dict] = []
    async for page in sfc.iter_bulk("SELECT Id, Email FROM Contact", fields, max_records=500):
        records += page
        if on_page is not None:
            on_page(len(records))
    return records


@pytest.fixture(autouse=True)
def logged_out() -> None:
    """Each test starts with no session kept in the process (crm/tokens.py), so its login really happens."""
    TOKENS.clear()


@pytest.mark.parametrize("flow", ["client_credentials", "jwt_bearer", "refresh_token"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_fault_kind_on_the_token_endpoint_is_retried_and_the_read_completes(
    sf: RunningSandbox, kind: str, flow: str
) -> None:
    """Issue 18, OPS-3, invariant 3: the token request meets the fault twice, is retried like a data call
    (metered, backoff on the client's clock), logs in once, and the bulk read returns every Contact once.
    Salesforce throttles with 403 REQUEST_LIMIT_EXCEEDED, never 429 (FACTS §4)."""
    meter, vt, auth = Meter(), VirtualTime(), login(sf, flow)
    vt.hooks.append(failing(sf, kind, TOKEN_PATH, meter, OAuthLogin.endpoint, failures=2))

    async def run():
        async with client(sf, meter, auth=auth, sleep=vt.sleep, **FAST) as sfc:
            sfc.api.limiter.clock = vt.clock
            return await contacts_by_bulk(sfc)

    records = asyncio.run(run())
    ids = [r["Id"] for r in records]
    assert len(ids) == len(set(ids)) == stats(sf)["Contact"]["live"]
    fault = 403 if kind == "rate_429" else KINDS[kind]
    assert statuses(meter, OAuthLogin.endpoint) == [fault, fault, 200]
    assert auth.logins == 1 and len(vt.slept) >= 2


@pytest.mark.parametrize("kind", ["rate_503", "rate_malformed", "rate_drop"])
def test_a_refusal_is_raised_at_once_with_the_apis_reason_even_after_faults(sf: RunningSandbox, kind: str) -> None:
    """Issue 18, OPS-3: a wrong secret is refused (400 invalid_client) and reported at once with the API's
    reason; the faults before it were retried, and a refusal cut short is read again, not taken for one."""
    meter, vt = Meter(), VirtualTime()
    wrong = login(sf, "client_credentials", consumer_secret="0" * 64)
    vt.hooks.append(failing(sf, kind, TOKEN_PATH, meter, OAuthLogin.endpoint, failures=1))

    async def run():
        async with client(sf, meter, auth=wrong, sleep=vt.sleep, **FAST) as sfc:
            sfc.api.limiter.clock = vt.clock
            await sfc.limits()

    with pytest.raises(AuthenticationError) as refused:
        asyncio.run(run())
    assert "HTTP 400 invalid_client: invalid client credentials" in str(refused.value)
    assert statuses(meter, OAuthLogin.endpoint) == [KINDS[kind], 400]  # no attempt after the refusal
    assert "0" * 64 not in str(refused.value)


def test_clients_of_one_connection_share_one_login_across_event_loops(sf: RunningSandbox) -> None:
    """Issue 18: one login per connection per run. The extract opens a client per object, each read in
    its own step (and event loop): every later client reuses the session; other credentials do not."""
    meter = Meter()
    auths = [login(sf, "client_credentials") for _ in range(3)]

    async def read(auth: OAuthLogin) -> int:
        async with client(sf, meter, auth=auth) as sfc:
            return len((await sfc.limits()).keys())

    for auth in auths:
        assert asyncio.run(read(auth)) > 0
    assert [a.logins for a in auths] == [1, 0, 0]
    assert meter.count(endpoint=OAuthLogin.endpoint) == 1
    other = login(sf, "jwt_bearer")  # another login of the same org: a session of its own
    assert asyncio.run(read(other)) > 0 and other.logins == 1


def test_an_expired_session_is_replaced_for_every_client_of_the_process(sf: RunningSandbox) -> None:
    """Issue 18: a 401 INVALID_SESSION_ID on one client logs in again once; the next client uses the new
    session without meeting the 401 itself."""
    meter = Meter()
    first, second = login(sf, "refresh_token"), login(sf, "refresh_token")

    async def read(auth: OAuthLogin) -> None:
        async with client(sf, meter, auth=auth) as sfc:
            await sfc.limits()

    asyncio.run(read(first))
    with sf.admin() as admin:
        admin.post("/oauth/expire").raise_for_status()
    asyncio.run(read(first))
    asyncio.run(read(second))
    assert first.logins == 2 and second.logins == 0
    assert statuses(meter, "GET /services/data/vXX.X/limits") == [200, 401, 200, 200]


@pytest.mark.parametrize("seed", [3, 7])
def test_bulk_result_pages_under_every_fault_kind_with_the_session_expiring_mid_read(
    sf: RunningSandbox, seed: int
) -> None:
    """Issue 18, OPS-1: the soak's mix (38 % of calls: 10 % 403-throttle, 10 % 500, 5 % 503, 3 % hung, 5 %
    dropped, 5 % cut short) on every endpoint, token endpoint included; the session ends after the first
    result page, so the new login meets the faults too. Every Contact comes back exactly once."""
    expected = stats(sf)["Contact"]["live"]
    meter, vt = Meter(), VirtualTime()
    auth = login(sf, "jwt_bearer")

    def expire_once(read_so_far: int) -> None:
        if read_so_far <= 500:
            with sf.admin() as admin:
                admin.post("/oauth/expire").raise_for_status()

    async def run():
        async with client(sf, meter, auth=auth, sleep=vt.sleep, **FAST) as sfc:
            sfc.api.limiter.clock = vt.clock
            set_faults(sf, **SOAK_MIX, seed=seed, timeout_seconds=3.0)
            return await contacts_by_bulk(sfc, on_page=expire_once)

    records = asyncio.run(run())
    ids = [r["Id"] for r in records]
    assert len(ids) == len(set(ids)) == expected
    assert auth.logins == 2  # before the expiry and after it, however many attempts each took
    failed = [s for s in statuses(meter, RESULTS) if s != 200]
    assert failed, "the faults reached the result pages"

"""Issue 18 (HubSpot): the OAuth refresh-token request is an API call like any other. Every fault kind the
sandbox injects on ``/oauth/v1/token`` is retried and the read completes with every record once; only
HubSpot's refusal (400 BAD_REFRESH_TOKEN …) is an authentication error, raised at once (OPS-3, DESIGN
invariant 3)."""

from __future__ import annotations

import asyncio

import pytest

from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.hubspot.auth import ENDPOINT, OAuthRefreshToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines_tests.crm.faulty_logins import FAST, KINDS, SOAK_MIX, VirtualTime, failing, set_faults, statuses
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

TOKEN_PATH = "/oauth/v1/token"


def oauth(sandbox: RunningSandbox, **changes: str) -> OAuthRefreshToken:
    creds = {**sandbox.credentials["oauth"], **changes}
    return OAuthRefreshToken(
        "hubspot", creds["token_url"], creds["client_id"], creds["client_secret"], creds["refresh_token"]
    )


def open_client(sandbox: RunningSandbox, auth: OAuthRefreshToken, meter: Meter, vt: VirtualTime) -> HubSpotClient:
    hs = HubSpotClient("hubspot", sandbox.base_url, auth, meter=meter, sleep=vt.sleep, **FAST)
    hs.api.limiter.clock = vt.clock
    return hs


def live(sandbox: RunningSandbox, obj: str) -> int:
    with sandbox.admin() as admin:
        return admin.get("/stats").json()[obj]["live"]


@pytest.fixture(autouse=True)
def no_token_kept() -> None:
    """Each test starts with no token kept in the process (crm/tokens.py), so its login really happens."""
    TOKENS.clear()


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_fault_kind_on_the_token_endpoint_is_retried_and_the_read_completes(
    hubspot_live: RunningSandbox, kind: str
) -> None:
    """Issue 18, OPS-3, invariant 3: the refresh meets the fault twice, is retried (a 429's policy wait
    honoured), one access token is obtained, and every company is read once."""
    meter, vt, auth = Meter(), VirtualTime(), oauth(hubspot_live)
    vt.hooks.append(failing(hubspot_live, kind, TOKEN_PATH, meter, ENDPOINT, failures=2))

    async def run():
        async with open_client(hubspot_live, auth, meter, vt) as hs:
            return [r async for page in hs.iter_all("companies", ["name"]) for r in page]

    ids = [r["id"] for r in asyncio.run(run())]
    assert len(ids) == len(set(ids)) == live(hubspot_live, "companies")
    assert statuses(meter, ENDPOINT) == [KINDS[kind], KINDS[kind], 200]
    assert auth.logins == 1


def test_a_refused_refresh_token_is_reported_at_once(hubspot_live: RunningSandbox) -> None:
    """Issue 18, OPS-3: an unknown refresh token is refused (400 BAD_REFRESH_TOKEN) after the 503 before it
    was retried; one attempt past the fault, the API's reason in the error, no secret."""
    meter, vt = Meter(), VirtualTime()
    wrong = oauth(hubspot_live, refresh_token="not-a-refresh-token")
    vt.hooks.append(failing(hubspot_live, "rate_503", TOKEN_PATH, meter, ENDPOINT, failures=1))

    async def run():
        async with open_client(hubspot_live, wrong, meter, vt) as hs:
            await hs.pipelines()

    with pytest.raises(AuthenticationError) as refused:
        asyncio.run(run())
    assert "HTTP 400 BAD_REFRESH_TOKEN: missing or unknown refresh token" in str(refused.value)
    assert statuses(meter, ENDPOINT) == [503, 400] and "not-a-refresh-token" not in str(refused.value)


def test_every_fault_kind_at_once_with_the_token_expiring_mid_read(hubspot_live: RunningSandbox) -> None:
    """Issue 18, OPS-1: the soak's mix on every endpoint, token endpoint included; the access token expires
    after the first page, so its renewal meets the faults too. Every company comes back exactly once."""
    expected = live(hubspot_live, "companies")
    meter, vt, auth = Meter(), VirtualTime(), oauth(hubspot_live)

    async def run():
        records: list[dict] = []
        async with open_client(hubspot_live, auth, meter, vt) as hs:
            set_faults(hubspot_live, **SOAK_MIX, seed=11, timeout_seconds=3.0)
            async for page in hs.iter_all("companies", ["name"]):
                if not records:
                    with hubspot_live.admin() as admin:
                        admin.post("/oauth/expire").raise_for_status()
                records += page
        return records

    ids = [r["id"] for r in asyncio.run(run())]
    assert len(ids) == len(set(ids)) == expected
    assert auth.logins == 2

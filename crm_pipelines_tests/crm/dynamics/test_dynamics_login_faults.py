"""Issue 18 (Dynamics): the Entra ID token request is an API call like any other. Every fault kind the
sandbox injects on its token endpoint is retried (a 200 whose body is cut short included: it is not a
refusal), and the read completes with every record once; only Entra's refusal is an authentication error,
raised at once with its code (OPS-3). Dataverse pages under every fault kind at once, with the token
revoked mid-read, still give every record once (OPS-1, DESIGN invariant 3)."""

from __future__ import annotations

import asyncio

import pytest

from crm_pipelines.crm.dynamics.auth import ENDPOINT
from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines_tests.crm.dynamics.conftest import client, credentials
from crm_pipelines_tests.crm.faulty_logins import (
    FAST,
    KINDS,
    SOAK_MIX,
    VirtualTime,
    failing,
    set_faults,
    statuses,
)
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def token_path(sandbox: RunningSandbox) -> str:
    return f"/{sandbox.credentials['tenant_id']}/oauth2/"


def live(sandbox: RunningSandbox, entity_set: str) -> int:
    with sandbox.admin() as admin:
        return admin.get("/stats").json()[entity_set]["live"]


@pytest.fixture(autouse=True)
def no_token_kept() -> None:
    """Each test starts with no token kept in the process (crm/tokens.py), so its login really happens."""
    TOKENS.clear()


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_fault_kind_on_the_token_endpoint_is_retried_and_the_read_completes(
    dynamics_live: RunningSandbox, kind: str
) -> None:
    """Issue 18, OPS-3, invariant 3: the token request meets the fault twice (a truncated 200 is retried,
    not reported as `token_request_failed … refused`), one token is issued, and every lead is read once."""
    meter, vt, auth = Meter(), VirtualTime(), credentials(dynamics_live)
    vt.hooks.append(failing(dynamics_live, kind, token_path(dynamics_live), meter, ENDPOINT, failures=2))

    async def run():
        async with client(dynamics_live, meter, auth=auth, sleep=vt.sleep, **FAST) as dyn:
            dyn.api.limiter.clock = vt.clock
            return [r async for page in dyn.iter_pages("leads", ["leadid"], page_size=1000) for r in page]

    ids = [r["leadid"] for r in asyncio.run(run())]
    assert len(ids) == len(set(ids)) == live(dynamics_live, "leads")
    assert statuses(meter, ENDPOINT) == [KINDS[kind], KINDS[kind], 200]
    assert auth.issued == 1
    if kind == "rate_429":  # Entra's Retry-After (the sandbox's 5 s) is honoured on the token endpoint too
        assert 5.0 in vt.slept


@pytest.mark.parametrize("kind", ["rate_500", "rate_malformed"])
def test_a_refusal_is_raised_at_once_with_entras_code(dynamics_live: RunningSandbox, kind: str) -> None:
    """Issue 18, OPS-3: a wrong secret is refused (401 invalid_client, AADSTS7000215) and reported at once;
    the fault before it was retried, and a refusal cut short is read again rather than taken for one."""
    meter, vt = Meter(), VirtualTime()
    wrong = credentials(dynamics_live, client_secret="not-the-secret")
    vt.hooks.append(failing(dynamics_live, kind, token_path(dynamics_live), meter, ENDPOINT, failures=1))

    async def run():
        async with client(dynamics_live, meter, auth=wrong, sleep=vt.sleep, **FAST) as dyn:
            dyn.api.limiter.clock = vt.clock
            await dyn.count("systemusers")

    with pytest.raises(AuthenticationError) as refused:
        asyncio.run(run())
    assert "HTTP 401 invalid_client/AADSTS7000215" in str(refused.value)
    assert statuses(meter, ENDPOINT) == [KINDS[kind], 401]
    assert "not-the-secret" not in str(refused.value)


def test_clients_of_one_connection_share_one_token(dynamics_live: RunningSandbox) -> None:
    """Issue 18: one login per connection per run: clients opened one after another (an extract's objects,
    each in its own event loop) use the token the first one fetched while it is valid."""
    meter = Meter()
    auths = [credentials(dynamics_live) for _ in range(3)]

    async def read(auth) -> int | None:
        async with client(dynamics_live, meter, auth=auth) as dyn:
            return await dyn.count("systemusers")

    counts = [asyncio.run(read(auth)) for auth in auths]
    assert counts[0] and len(set(counts)) == 1
    assert [a.issued for a in auths] == [1, 0, 0] and meter.count(endpoint=ENDPOINT) == 1


@pytest.mark.parametrize("seed", [3, 7])
def test_pages_under_every_fault_kind_with_the_token_revoked_mid_read(dynamics_live: RunningSandbox, seed: int) -> None:
    """Issue 18, OPS-1: the soak's mix (38 % of calls: 10 % 429, 10 % 500, 5 % 503, 3 % hung, 5 % dropped,
    5 % cut short) on every endpoint, token endpoint included; every token is revoked after the first page,
    so the next token request meets the faults too. Every contact comes back exactly once."""
    expected = live(dynamics_live, "contacts")
    meter, vt, auth = Meter(), VirtualTime(), credentials(dynamics_live)

    async def run():
        records: list[dict] = []
        async with client(dynamics_live, meter, auth=auth, sleep=vt.sleep, **FAST) as dyn:
            dyn.api.limiter.clock = vt.clock
            set_faults(dynamics_live, **SOAK_MIX, seed=seed, timeout_seconds=3.0)
            async for page in dyn.iter_pages("contacts", ["contactid"], page_size=1000):
                if not records:
                    with dynamics_live.admin() as admin:
                        admin.post("/oauth/expire").raise_for_status()
                records += page
        return records

    ids = [r["contactid"] for r in asyncio.run(run())]
    assert len(ids) == len(set(ids)) == expected
    assert auth.issued == 2  # before the revocation and after it, however many attempts each took
    assert any(s != 200 for s in statuses(meter, "GET /contacts")), "the faults reached the pages"

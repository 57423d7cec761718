"""Entra ID client credentials against the sandbox's token endpoint, and secrets kept out of logs and errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from crm_pipelines.crm.dynamics.auth import RENEW_BEFORE_S
from crm_pipelines.crm.errors import ApiError, AuthenticationError, NotFoundError, RetriesExhausted
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines_tests.crm.dynamics.conftest import client, credentials
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import set_faults


def test_token_is_refreshed_when_the_server_expires_it(dynamics_live: RunningSandbox) -> None:
    """Issue 5: a token the Web API no longer accepts (401) is replaced once and the call goes through."""
    TOKENS.clear()  # no token left by an earlier test: this one starts without
    auth = credentials(dynamics_live)
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter, auth=auth) as dyn:
            before = await dyn.count("systemusers")
            with dynamics_live.admin() as admin:
                admin.post("/oauth/expire").raise_for_status()
            after = await dyn.count("systemusers")
            return before, after

    before, after = asyncio.run(run())
    assert before == after and before > 0
    assert auth.issued == 2
    assert meter.statuses()[401] == 1  # the expired token was tried once, then the fresh one worked


def test_token_is_renewed_before_it_expires(dynamics_live: RunningSandbox) -> None:
    """Issue 5: the cached token is renewed shortly before its expiry, without waiting for a 401."""
    TOKENS.clear()  # a token left by an earlier test has its expiry on the real clock, not this test's
    now = [1_000_000.0]
    auth = credentials(dynamics_live, clock=lambda: now[0])
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter, auth=auth) as dyn:
            await dyn.count("systemusers")
            await dyn.count("systemusers")
            assert auth.issued == 1  # cached
            now[0] += 3599 - RENEW_BEFORE_S + 1  # within the renewal margin of its 3,599 s lifetime
            await dyn.count("systemusers")

    asyncio.run(run())
    assert auth.issued == 2 and 401 not in meter.statuses()


def test_errors_are_typed_and_never_carry_secrets(dynamics_live: RunningSandbox, caplog) -> None:
    """OPS-3 / invariant 5: logs and exception texts name the connection, endpoint and the API's error code,
    never the client secret or a bearer token."""
    creds = dynamics_live.credentials
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    tokens: list[str] = []

    async def run():
        bad = credentials(dynamics_live, client_secret=creds["client_secret"] + "x")
        async with client(dynamics_live, auth=bad) as dyn:
            with pytest.raises(AuthenticationError) as e:
                await dyn.count("contacts")
            texts.append(str(e.value))
        set_faults(dynamics_live, rate_503=1.0, path_prefix="/api/data/v9.2/accounts")
        good = credentials(dynamics_live)
        async with client(dynamics_live, auth=good, backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=3) as dyn:
            with pytest.raises(RetriesExhausted) as e:
                await dyn.count("accounts")
            texts.append(str(e.value))
            with pytest.raises(NotFoundError) as e:
                await dyn.api.request("GET", "contacts(00000000-0000-0000-0000-000000000001)", endpoint="GET /contacts")
            texts.append(str(e.value))
            with pytest.raises(ApiError) as e:
                [p async for p in dyn.iter_all("Account", ["accountid"])]  # entity sets are case-sensitive
            texts.append(str(e.value))
            tokens.extend(good.secrets())

    asyncio.run(run())
    assert "HTTP 401 invalid_client/AADSTS7000215" in texts[0]
    assert "gave up after 3 attempts" in texts[1] and "HTTP 503" in texts[1]
    assert "HTTP 404 0x80040217" in texts[2]
    assert "0x8006088a" in texts[3]
    everything = "\n".join(texts + [r.getMessage() for r in caplog.records])
    assert "retrying" in everything  # the retries were logged …
    for secret in [creds["client_secret"], creds["access_token"], *tokens]:
        assert secret[8:] not in everything  # … and no secret, not even in part

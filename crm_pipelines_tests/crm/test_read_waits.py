"""Issue 18: what a flaky API costs a read in time. The bulk import on a bad day (the soak's fault mix) must
take at most twice the fault-free time, without giving up Retry-After, the published limits or a single
record: a request the server holds on to is given up on after the read timeout (not after the server's own
hold), a legitimately slow API is still waited for, and the clients of one connection share its
concurrency bound (DESIGN invariant 3). Faults are the sandbox's own,
on the wire; backoff runs on a virtual clock, timeouts on the real one. The backoff's shape (full jitter)
is pinned in test_retry_budget.py."""

from __future__ import annotations

import asyncio
import time

from crm_pipelines.crm.http import TIMEOUT_GROWTH
from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.ratelimit import RateLimits, Window
from crm_pipelines_tests.crm.faulty_logins import HELD_S, VirtualTime, failing, set_faults, statuses
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

PIPELINES = "/crm/v3/pipelines/deals"
ENDPOINT = "GET /crm/v3/pipelines/{type}"


def open_client(sandbox: RunningSandbox, meter: Meter, vt: VirtualTime | None = None, **options) -> HubSpotClient:
    if vt is not None:
        options["sleep"] = vt.sleep
    hs = HubSpotClient("hubspot", sandbox.base_url, PrivateAppToken(sandbox.token), meter=meter, **options)
    if vt is not None:
        hs.api.limiter.clock = vt.clock
    return hs


def test_a_hung_read_costs_the_read_timeout_not_the_servers_hold(hubspot_live: RunningSandbox) -> None:
    """A request the API never answers is given up on after the connection's read timeout and sent again;
    the call does not wait for the server to give up first (the sandbox holds it for HELD_S, then 504s)."""
    meter, vt = Meter(), VirtualTime()
    vt.hooks.append(failing(hubspot_live, "rate_timeout", PIPELINES, meter, ENDPOINT, failures=1))

    async def run():
        async with open_client(hubspot_live, meter, vt, read_timeout_s=0.5) as hs:
            return await hs.pipelines()

    started = time.perf_counter()
    assert asyncio.run(run())
    assert statuses(meter, ENDPOINT) == ["timeout", 200]
    assert time.perf_counter() - started < HELD_S


def test_a_slow_api_is_waited_for_longer_after_each_timeout(hubspot_live: RunningSandbox) -> None:
    """An API that answers every call, only slower than the read timeout (1 s against 0.5 s), is not retried
    forever at the same timeout: the next attempt waits four times longer, and the read completes."""
    assert TIMEOUT_GROWTH == 4
    meter, vt = Meter(), VirtualTime()
    set_faults(hubspot_live, latency_ms=1000)

    async def run():
        async with open_client(hubspot_live, meter, vt, read_timeout_s=0.5) as hs:
            return await hs.pipelines()

    assert asyncio.run(run())
    assert statuses(meter, ENDPOINT) == ["timeout", 200]


def test_the_clients_of_one_connection_share_its_concurrency(hubspot_live: RunningSandbox) -> None:
    """A step reading a CRM's objects side by side opens a client per object; together they keep within the
    connection's concurrency (here one request in flight): six calls of 0.3 s through two clients take at
    least 1.8 s, as they would through one."""
    set_faults(hubspot_live, latency_ms=300)
    limits = RateLimits(buckets={"default": (Window(1000, 10.0),)}, max_concurrency=1)

    async def run():
        async with open_client(hubspot_live, Meter(), limits=limits) as a, open_client(
            hubspot_live, Meter(), limits=limits
        ) as b:
            await asyncio.gather(*(hs.pipelines() for hs in (a, b, a, b, a, b)))

    started = time.perf_counter()
    asyncio.run(run())
    assert time.perf_counter() - started >= 6 * 0.3

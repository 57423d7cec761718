"""A bad day on the Web API: injected 429/5xx/timeouts/drops/malformed bodies, and the service-protection 429."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from crm_pipelines.crm.dynamics.odata import where
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import set_faults

FAST_RETRIES = {"timeout_s": 0.5, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 12}


class VirtualTime:
    """The client's waits (backoff, Retry-After, rate windows) on a clock that jumps instead of sleeping."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def virtual_client(sandbox: RunningSandbox, meter: Meter | None, vt: VirtualTime, **options):
    dyn = client(sandbox, meter, sleep=vt.sleep, **options)
    dyn.api.limiter.clock = vt.clock
    return dyn


@pytest.mark.parametrize("fault", ["rate_429", "rate_500", "rate_503", "rate_timeout", "rate_malformed", "rate_drop"])
def test_full_read_survives_20_percent_faults(dynamics_live: RunningSandbox, fault: str) -> None:
    """Issue 5 "Done when": with 20 % of calls failing, a full read still returns every record exactly once."""
    with dynamics_live.admin() as admin:
        expected = admin.get("/stats").json()["leads"]["live"]
    set_faults(dynamics_live, **{fault: 0.2}, timeout_seconds=1.0, seed=3, path_prefix="/api/data/v9.2/leads")
    meter, vt = Meter(), VirtualTime()

    async def run():
        async with virtual_client(dynamics_live, meter, vt, **FAST_RETRIES) as dyn:
            # small pages, so the read takes enough calls for the faults to bite
            return [r async for page in dyn.iter_pages("leads", ["leadid"], page_size=100) for r in page]

    records = asyncio.run(run())
    ids = [r["leadid"] for r in records]
    assert len(ids) == len(set(ids)) == expected
    failures = sum(n for status, n in meter.statuses().items() if status != 200)
    assert failures > 0  # the faults really happened, and were absorbed


def test_a_429_holds_the_client_for_retry_after(dynamics_live: RunningSandbox) -> None:
    """Issue 5: Retry-After honoured. The sandbox's throttle answers Retry-After: 5; the retry waits that long."""
    set_faults(dynamics_live, rate_429=1.0, path_prefix="/api/data/v9.2/systemusers")
    vt = VirtualTime()
    meter = Meter()
    real_sleep = vt.sleep

    async def sleep(seconds: float) -> None:
        await real_sleep(seconds)
        if len(vt.slept) == 2:  # the server calms down while the client waits
            set_faults(dynamics_live)

    vt.sleep = sleep  # type: ignore[method-assign]

    async def run():
        async with virtual_client(dynamics_live, meter, vt, max_attempts=5) as dyn:
            return [r async for page in dyn.iter_all("systemusers", ["systemuserid"]) for r in page]

    started = vt.now
    users = asyncio.run(run())
    assert users and vt.slept[0] == 5.0  # the first retry waited exactly as long as the server said
    assert vt.now - started >= 10.0  # and both 429s were waited out
    assert [s for s in meter.statuses() if s != 200] == [429]


def test_batch_answers_cut_short_are_resent_without_duplicates(dynamics_live: RunningSandbox) -> None:
    """Invariant 1 + OPS-6: a $batch whose answer is lost is sent again; creates carry their own GUIDs, so
    the rows made by the lost attempt are recognised and nothing is created twice."""
    tag = uuid.uuid4().hex[:8]
    inputs = [{"record": {"lastname": f"Resent {i}", "firstname": tag}} for i in range(40)]
    set_faults(dynamics_live, rate_malformed=0.5, seed=1, path_prefix="/api/data/v9.2/$batch")
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter, **FAST_RETRIES) as dyn:
            outcomes = await dyn.write("create", "contacts", inputs)
            set_faults(dynamics_live)
            found = [
                r
                async for p in dyn.iter_pages("contacts", ["contactid"], filter=where("firstname", "eq", tag))
                for r in p
            ]
            return outcomes, found

    outcomes, found = asyncio.run(run())
    assert all(o.ok and o.new for o in outcomes)
    assert sorted(r["contactid"] for r in found) == sorted(o.id for o in outcomes)  # 40 rows, not more
    assert meter.count(endpoint="POST /$batch") > 1  # the first answer was really lost

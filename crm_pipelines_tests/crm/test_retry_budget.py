"""Issue 18: a call waits faults out within a stated time budget, not a fixed count of attempts; when it
gives up, the error names the endpoint and the API's last answer; a step's failure text is never lost
(OPS-1: the bulk import says which objects to re-run). DESIGN invariant 3: every attempt is metered."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from crm_pipelines.crm.errors import RetriesExhausted, describe_error
from crm_pipelines.crm.http import BACKOFF_GROWTH, BACKOFF_INITIAL_S, BACKOFF_MAX_S, RETRY_BUDGET_S
from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.extract.assets import build_crm_extract
from crm_pipelines.defs.resources import CrmConnections, StateDatabase, build_resources
from crm_pipelines.settings import load_settings
from crm_pipelines_tests.crm.faulty_logins import VirtualTime, failing, set_faults, statuses
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

PIPELINES = "/crm/v3/pipelines/deals"
ENDPOINT = "GET /crm/v3/pipelines/{type}"


def open_client(sandbox: RunningSandbox, meter: Meter, vt: VirtualTime, **options) -> HubSpotClient:
    token = PrivateAppToken(sandbox.token)
    hs = HubSpotClient("hubspot", sandbox.base_url, token, meter=meter, sleep=vt.sleep, **options)
    hs.api.limiter.clock = vt.clock
    return hs


def test_eleven_faults_in_a_row_are_waited_out(hubspot_live: RunningSandbox) -> None:
    """Issue 18: eleven 503s in a row (what exhausted the old fixed 8 attempts) are waited out; each wait is
    drawn at random below a ceiling that grows 1.6 times per attempt from a second up to the one-minute cap
    (full jitter: a fault that comes and goes costs about half a second, and clients that failed together
    do not retry in step), and all of them stay inside the call's budget."""
    meter, vt = Meter(), VirtualTime()
    vt.hooks.append(failing(hubspot_live, "rate_503", PIPELINES, meter, ENDPOINT, failures=11))

    async def run():
        async with open_client(hubspot_live, meter, vt) as hs:
            return await hs.pipelines()

    assert asyncio.run(run())
    assert statuses(meter, ENDPOINT) == [503] * 11 + [200]
    assert len(vt.slept) == 11 and max(vt.slept) <= BACKOFF_MAX_S and sum(vt.slept) <= RETRY_BUDGET_S
    ceilings = [min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * BACKOFF_GROWTH**n) for n in range(11)]
    assert all(0 <= s <= c for s, c in zip(vt.slept, ceilings, strict=True))  # the tenth has reached the cap
    assert len(set(vt.slept)) == 11  # drawn, not a fixed schedule


def test_an_api_down_for_longer_than_the_budget_is_reported_with_its_last_answer(hubspot_live: RunningSandbox) -> None:
    """Issue 18: a service that stays down is retried for the whole budget (15 minutes, on the client's
    clock), then reported: how many attempts, how long, the endpoint and the API's own last answer."""
    meter, vt = Meter(), VirtualTime()
    set_faults(hubspot_live, rate_503=1.0, path_prefix=PIPELINES)

    async def run():
        async with open_client(hubspot_live, meter, vt) as hs:
            await hs.pipelines()

    with pytest.raises(RetriesExhausted) as gave_up:
        asyncio.run(run())
    error = gave_up.value
    assert RETRY_BUDGET_S - BACKOFF_MAX_S - 1 < sum(vt.slept) <= RETRY_BUDGET_S
    assert error.attempts == len(statuses(meter, ENDPOINT)) == len(vt.slept) + 1
    text = str(error)
    assert f"gave up after {error.attempts} attempts in " in text
    assert f"last answer: [hubspot] {ENDPOINT} → HTTP 503 INTERNAL_ERROR: Service Unavailable" in text


def test_a_retry_after_past_the_budget_is_not_waited_for(hubspot_live: RunningSandbox) -> None:
    """Issue 18: the server's Retry-After is honoured, but a call does not wait past its budget for it: a
    10 s throttle against a 4 s budget is reported at once, the 429 as its last answer."""
    meter, vt = Meter(), VirtualTime()
    set_faults(hubspot_live, rate_429=1.0, path_prefix=PIPELINES)

    async def run():
        async with open_client(hubspot_live, meter, vt, retry_budget_s=4.0) as hs:
            await hs.pipelines()

    with pytest.raises(RetriesExhausted) as gave_up:
        asyncio.run(run())
    assert gave_up.value.attempts == 1 and vt.slept == [] and "HTTP 429" in str(gave_up.value)


def test_an_error_without_a_message_is_still_described() -> None:
    """Issue 18: `str(e).splitlines()[0]` raised IndexError for httpx.ReadError(''), and the step's failure
    lost which objects were not extracted."""
    assert describe_error(httpx.ReadError("")) == "ReadError"
    assert describe_error(ValueError("\n  \nsecond line\nthird")) == "ValueError: second line"
    assert describe_error(RuntimeError("one")) == "RuntimeError: one"


class Unreachable(CrmConnections):
    """A connection whose every client dies as a dropped connection does: an exception without a message."""

    def client(self, crm: str, state: StateDatabase, meter: Meter):
        raise httpx.ReadError("")


def test_a_step_failing_with_an_empty_message_still_names_its_objects(tmp_path: Path) -> None:
    """Issue 18, OPS-1: the extract step's failure names every object not extracted and the first cause,
    even when that cause has no message at all."""
    settings_path = tmp_path / "settings.yaml"
    settings_path.write_text(
        yaml.safe_dump(
            {
                "state_database_url": f"sqlite:///{tmp_path / 'state.sqlite3'}",
                "extract": {"start_date": (date.today() - timedelta(days=3)).isoformat()},
            }
        )
    )
    settings = load_settings(settings_path)
    extract = build_crm_extract("hubspot", ["contacts", "companies"], settings)
    resources = build_resources(settings, str(settings_path), state_url=settings.state_database_url)
    resources["crm_connections"] = Unreachable(
        crm_settings=resources["crm_settings"],
        hubspot=resources["hubspot"],
        salesforce=resources["salesforce"],
        dynamics=resources["dynamics"],
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [extract],
            instance=instance,
            resources=resources,
            partition_key=(date.today() - timedelta(days=1)).isoformat(),
            raise_on_error=False,
        )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "hubspot: contacts, companies not extracted; contacts: ReadError" in (error.cause or error).message

"""Issue 14 (OPS-2): the change sensor's COUNT() polls of Salesforce as Composite requests of five queries.

``count_windows`` over the six polled objects takes two metered calls where six ``count_window`` calls take
six, and returns the same numbers; a failed subrequest is raised as the connector's ``ApiError``.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from crm_pipelines.crm.errors import ApiError
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.client import COMPOSITE_ENDPOINT
from crm_pipelines.crm.salesforce.values import parse_datetime
from crm_pipelines_tests.crm.salesforce.conftest import client, stats
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

POLLED = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "Task")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FAR = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
LOGIN = "POST /services/oauth2/token"


def api_calls(meter: Meter) -> int:
    return meter.count() - meter.count(endpoint=LOGIN)


def test_count_windows_of_six_objects_is_two_calls_with_the_same_numbers(sf: RunningSandbox) -> None:
    """Issue 14 / OPS-2: six COUNT() windows (whole objects and a half window) in two composite calls; each
    count equals ``count_window``'s (six calls) and the sandbox's own numbers."""

    async def run():
        meter = Meter()
        async with client(sf, meter) as sfc:
            stamps = sorted(
                parse_datetime(r["SystemModstamp"])
                for page in [p async for p in sfc.iter_query("SELECT SystemModstamp FROM Account")]
                for r in page
            )
            windows = {obj: (EPOCH, FAR) for obj in POLLED}
            windows["Account"] = (stamps[0], stamps[len(stamps) // 2])  # a window that cuts the object in two
            meter.calls.clear()
            combined = await sfc.count_windows(windows)
            combined_calls, composite_calls = api_calls(meter), meter.count(endpoint=COMPOSITE_ENDPOINT)
            meter.calls.clear()
            single = {obj: await sfc.count_window(obj, *window) for obj, window in windows.items()}
            return windows, combined, combined_calls, composite_calls, single, api_calls(meter)

    windows, combined, combined_calls, composite_calls, single, single_calls = asyncio.run(run())
    assert combined_calls == composite_calls == 2 and single_calls == 6
    assert combined == single and list(combined) == list(windows)
    live = stats(sf)
    assert all(combined[obj] == live[obj]["live"] for obj in POLLED if obj != "Account")
    assert 0 < combined["Account"] < live["Account"]["live"]


def test_count_windows_raises_a_failed_subrequest_as_an_api_error(sf: RunningSandbox) -> None:
    """A COUNT() that Salesforce refuses (an object that does not exist) is the ``ApiError`` carrying that
    subrequest's code and message, as ``count_window`` raises it; nothing is sent for an empty mapping."""

    async def run():
        meter = Meter()
        async with client(sf, meter) as sfc:
            empty = await sfc.count_windows({})
            calls_for_empty = api_calls(meter)
            with pytest.raises(ApiError) as combined:
                await sfc.count_windows({"Lead": (EPOCH, FAR), "NoSuchObject": (EPOCH, FAR)})
            with pytest.raises(ApiError) as single:
                await sfc.count_window("NoSuchObject", EPOCH, FAR)
            return empty, calls_for_empty, combined.value, single.value

    empty, calls_for_empty, combined, single = asyncio.run(run())
    assert empty == {} and calls_for_empty == 0
    assert (combined.status, combined.code) == (single.status, single.code) and combined.code
    assert "NoSuchObject" in combined.api_message and single.api_message in combined.api_message

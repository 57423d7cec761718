"""``crm-pipelines bench connectors``: full reads of every object through the connectors, rate limits on.

For each ``<crm>.<object>`` it reports the records read, the API calls used against the least possible
(records ÷ the API's largest page, rounded up), the wall time against the least time the published rate
limits allow for that many calls at their sustained rate, and how many calls the API throttled (429).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import SEARCH_PAGE_MAX, HubSpotClient
from crm_pipelines.crm.hubspot.dialect import HUBSPOT_LIMITS
from crm_pipelines.crm.metering import Meter
from crm_pipelines.sandbox.launch import running_sandboxes

HUBSPOT_OBJECTS = {
    "contacts": ["email", "firstname", "lastname", "lifecyclestage", "hubspot_owner_id", "lastmodifieddate"],
    "companies": ["name", "domain", "hubspot_owner_id", "hs_lastmodifieddate"],
    "deals": ["dealname", "amount", "pipeline", "dealstage", "closedate", "hs_lastmodifieddate"],
}


def figures(records: int, calls: int, page_max: int, sustained_per_s: float, wall_s: float, throttled: int) -> dict:
    min_calls = math.ceil(records / page_max) or 1
    bound_s = min_calls / sustained_per_s
    return {
        "records": records,
        "api_calls": calls,
        "min_api_calls": min_calls,
        "calls_ratio": round(calls / min_calls, 3),
        "wall_s": round(wall_s, 2),
        "bound_s": round(bound_s, 2),
        "time_ratio": round(wall_s / bound_s, 3),
        "http_429": throttled,
    }


async def bench_hubspot(info: dict[str, Any]) -> dict[str, dict]:
    base, token = info["base_url"], info["credentials"]["access_token"]
    # full reads go through search (200 a page, its own 5/s limit): the fewest calls HubSpot allows
    window = HUBSPOT_LIMITS.buckets["search"][0]
    out: dict[str, dict] = {}
    meter = Meter()
    # one client for the connection, as a sync holds it: its rate limiter knows the calls just made
    async with HubSpotClient("hubspot", base, PrivateAppToken(token), meter=meter) as hubspot:
        for name, properties in HUBSPOT_OBJECTS.items():
            meter.calls.clear()
            started = time.perf_counter()
            records = 0
            async for page in hubspot.iter_full(name, properties):
                records += len(page)
            wall = time.perf_counter() - started
            out[f"hubspot.{name}"] = figures(
                records,
                meter.count(),
                SEARCH_PAGE_MAX,
                window.calls / window.period_s,
                wall,
                meter.statuses().get(429, 0),
            )
    stats = httpx.get(f"{base}/__sandbox__/stats").json()
    for name in HUBSPOT_OBJECTS:
        if out[f"hubspot.{name}"]["records"] != stats[name]["live"]:
            raise AssertionError(f"hubspot.{name}: read {out[f'hubspot.{name}']}, the sandbox holds {stats[name]}")
    return out


async def _bench_dynamics(info: dict[str, Any]) -> dict[str, dict]:
    from crm_pipelines.bench.connectors_dynamics import bench_dynamics  # imports figures() from here

    return await bench_dynamics(info)


async def _bench_salesforce(info: dict[str, Any]) -> dict[str, dict]:
    from crm_pipelines.bench.connectors_salesforce import bench_salesforce  # imports figures() from here

    return await bench_salesforce(info)


BENCHES: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, dict]]]] = {
    "hubspot": bench_hubspot,
    "salesforce": _bench_salesforce,
    "dynamics": _bench_dynamics,
}


async def run_connectors_bench(scale: int, seed: int) -> dict[str, dict]:
    from crm_pipelines.sandbox.registry import SANDBOXES

    crms = [crm for crm in BENCHES if crm in SANDBOXES]
    results: dict[str, dict] = {}
    with running_sandboxes(crms, scale=scale, seed=seed) as info:
        for crm in crms:
            results.update(await BENCHES[crm](info[crm]))
    return results

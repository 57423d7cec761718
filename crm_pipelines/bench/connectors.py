"""``crm-pipelines bench connectors``: full reads of every object through the connectors, rate limits on.

For each ``<crm>.<object>`` it reports the records read, the API calls used, the wall time, and how many calls
the API throttled (429), against what the API's published limits allow (issue 17). A read may use every rate
bucket the API offers for it at once (HubSpot: the list endpoint on the 10-second bucket and search on its
own), so the bound counts them all:

- each bucket ``b`` the read can use (``limit_b`` calls in any ``period_b``) reads at most
  ``rate_b = page_b * limit_b / period_b`` records a second (its largest page times its sustained call rate);
- the fastest read gives each bucket a share of the records in proportion to that rate, read in full pages:
  ``calls_b = ceil(records * rate_b / sum(rate) / page_b)``, and ``min_api_calls = sum(calls_b)`` (at least 1);
- ``bound_s = max over b of calls_b * period_b / limit_b``: the least time, every bucket busy until the end
  (about ``records / sum(rate_b)``).

Through a single bucket this is ``ceil(records / page) * period / limit``, the bound used before issue 17.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import LIST_PAGE_MAX, SEARCH_PAGE_MAX, HubSpotClient
from crm_pipelines.crm.hubspot.dialect import HUBSPOT_LIMITS
from crm_pipelines.crm.metering import Meter
from crm_pipelines.sandbox.launch import running_sandboxes

HUBSPOT_OBJECTS = {
    "contacts": ["email", "firstname", "lastname", "lifecyclestage", "hubspot_owner_id", "lastmodifieddate"],
    "companies": ["name", "domain", "hubspot_owner_id", "hs_lastmodifieddate"],
    "deals": ["dealname", "amount", "pipeline", "dealstage", "closedate", "hs_lastmodifieddate"],
}


@dataclass(frozen=True)
class Bucket:
    """One rate bucket a read can use: its name, its largest page and its sustained calls a second."""

    name: str
    page_max: int
    calls_per_s: float

    @property
    def records_per_s(self) -> float:
        return self.page_max * self.calls_per_s


def least_calls(records: int, buckets: Sequence[Bucket]) -> list[int]:
    """Per bucket, the calls of the fastest read: its share of the records in proportion to its rate."""
    rate = sum(b.records_per_s for b in buckets)
    return [math.ceil(records * b.records_per_s / rate / b.page_max) for b in buckets]


def bound_s(records: int, buckets: Sequence[Bucket]) -> float:
    """The least time the buckets allow for ``records``: every bucket busy until the end (module doc)."""
    calls = least_calls(records, buckets)
    return max(
        max(n / b.calls_per_s for n, b in zip(calls, buckets, strict=True)), 1 / max(b.calls_per_s for b in buckets)
    )


def bucket_figures(records: int, calls: int, buckets: Sequence[Bucket], wall_s: float, throttled: int) -> dict:
    """The figures of one read against the bound of every bucket it can use (formula in the module doc)."""
    min_calls = max(1, sum(least_calls(records, buckets)))
    bound = bound_s(records, buckets)
    return {
        "records": records,
        "api_calls": calls,
        "min_api_calls": min_calls,
        "calls_ratio": round(calls / min_calls, 3),
        "wall_s": round(wall_s, 2),
        "bound_s": round(bound, 2),
        "time_ratio": round(wall_s / bound, 3),
        "http_429": throttled,
        "buckets": {b.name: round(b.records_per_s, 1) for b in buckets},
    }


def figures(records: int, calls: int, page_max: int, sustained_per_s: float, wall_s: float, throttled: int) -> dict:
    """A read through one bucket."""
    return bucket_figures(records, calls, [Bucket("default", page_max, sustained_per_s)], wall_s, throttled)


def hubspot_buckets() -> list[Bucket]:
    """A full HubSpot read: the list endpoint on the 10-second bucket, search on its own (FACTS §2, §4)."""
    ten_secondly = HUBSPOT_LIMITS.buckets["default"][0]
    search = HUBSPOT_LIMITS.buckets["search"][0]
    return [
        Bucket("list", LIST_PAGE_MAX, ten_secondly.calls / ten_secondly.period_s),
        Bucket("search", SEARCH_PAGE_MAX, search.calls / search.period_s),
    ]


async def bench_hubspot(info: dict[str, Any]) -> dict[str, dict]:
    base, token = info["base_url"], info["credentials"]["access_token"]
    buckets = hubspot_buckets()
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
            out[f"hubspot.{name}"] = bucket_figures(records, meter.count(), buckets, wall, meter.statuses().get(429, 0))
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

"""``crm-pipelines bench connectors`` for Dynamics 365: a full read of each table through the connector.

Same figures as ``bench_hubspot``: records, API calls against the least possible (records ÷ 5,000, the
largest ``odata.maxpagesize``), wall time against the least time the published service-protection limit
allows for those calls at its sustained rate (6,000 requests per 300 s = 20/s), and calls throttled (429).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from crm_pipelines.bench.connectors import figures
from crm_pipelines.crm.connections import dynamics_sandbox_auth
from crm_pipelines.crm.dynamics.client import PAGE_MAX, DynamicsClient
from crm_pipelines.crm.dynamics.dialect import SUSTAINED_PER_S
from crm_pipelines.crm.metering import Meter
from crm_pipelines.extract.dynamics import SELECT

DYNAMICS_TABLES = ("contacts", "leads", "accounts", "opportunities", "systemusers")


async def bench_dynamics(info: dict[str, Any], ca_bundle: str | None = None) -> dict[str, dict]:
    auth = dynamics_sandbox_auth(info)
    out: dict[str, dict] = {}
    meter = Meter()
    # one client for the connection, as a sync holds it: its rate limiter knows the calls just made
    async with DynamicsClient("dynamics", info["base_url"], auth, meter=meter, ca_bundle=ca_bundle) as dynamics:
        for table in DYNAMICS_TABLES:
            await auth.headers(dynamics.api)  # the token is fetched once, outside the timings
            meter.calls.clear()
            started = time.perf_counter()
            records = 0
            async for page in dynamics.iter_all(table, SELECT[table]):
                records += len(page)
            wall = time.perf_counter() - started
            out[f"dynamics.{table}"] = figures(
                records, meter.count(), PAGE_MAX, SUSTAINED_PER_S, wall, meter.statuses().get(429, 0)
            )
    with httpx.Client(verify=ca_bundle or True) as http:
        stats = http.get(f"{info['base_url']}/__sandbox__/stats").json()
    for table in DYNAMICS_TABLES:
        if out[f"dynamics.{table}"]["records"] != stats[table]["live"]:
            raise AssertionError(f"dynamics.{table}: read {out[f'dynamics.{table}']}, the sandbox holds {stats[table]}")
    return out

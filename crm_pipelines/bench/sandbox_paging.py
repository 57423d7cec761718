"""``crm-pipelines bench sandbox``: can a sandbox feed a sync faster than any real API would?

Starts ``crm-pipelines sandbox serve`` as its own process (so its memory is measured alone), waits for it to
generate the universe, then pages every contact through the CRM's own paging over loopback HTTP with rate
limits lifted, exactly as a full-read client would: HubSpot's list endpoint (100 a page), Salesforce's
``query`` + ``nextRecordsUrl`` (2,000), Dataverse's ``odata.maxpagesize`` + ``@odata.nextLink`` (5,000).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.sandbox.launch import running_sandboxes

Pager = Callable[[dict[str, Any]], Awaitable[tuple[int, int]]]  # sandbox announcement -> (records, pages)


async def _page_hubspot(info: dict[str, Any]) -> tuple[int, int]:
    records = pages = 0
    headers = {"Authorization": f"Bearer {info['credentials']['access_token']}"}
    async with httpx.AsyncClient(base_url=info["base_url"], headers=headers, timeout=60) as client:
        params: dict[str, Any] = {"limit": 100, "properties": "email,firstname,lastname,lastmodifieddate"}
        while True:
            response = await client.get("/crm/v3/objects/contacts", params=params)
            response.raise_for_status()
            body = response.json()
            records, pages = records + len(body["results"]), pages + 1
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                return records, pages
            params["after"] = after


async def _page_salesforce(info: dict[str, Any]) -> tuple[int, int]:
    records = pages = 0
    headers = {"Authorization": f"Bearer {info['credentials']['access_token']}"}
    soql = "SELECT Id, Email, FirstName, LastName, AccountId, SystemModstamp FROM Contact"
    version = info["credentials"]["api_version"]
    async with httpx.AsyncClient(base_url=info["base_url"], headers=headers, timeout=120) as client:
        response = await client.get(f"/services/data/v{version}/query", params={"q": soql})
        while True:
            response.raise_for_status()
            body = response.json()
            records, pages = records + len(body["records"]), pages + 1
            if body["done"]:
                return records, pages
            response = await client.get(body["nextRecordsUrl"])


async def _page_dynamics(info: dict[str, Any]) -> tuple[int, int]:
    records = pages = 0
    creds = info["credentials"]
    headers = {"Authorization": f"Bearer {creds['access_token']}", "Prefer": "odata.maxpagesize=5000"}
    async with httpx.AsyncClient(headers=headers, timeout=120) as client:
        url: str | None = f"{creds['api_url']}/contacts"
        params: dict[str, str] | None = {"$select": "fullname,emailaddress1,modifiedon,_parentcustomerid_value"}
        while url:
            response = await client.get(url, params=params)
            response.raise_for_status()
            body = response.json()
            records, pages = records + len(body["value"]), pages + 1
            url, params = body.get("@odata.nextLink"), None
    return records, pages


PAGERS: dict[str, tuple[str, Pager]] = {  # crm -> (the contacts object's name in its stats, pager)
    "hubspot": ("contacts", _page_hubspot),
    "salesforce": ("Contact", _page_salesforce),
    "dynamics": ("contacts", _page_dynamics),
}


async def run_paging_bench(crm: str, scale: int, seed: int) -> dict:
    stats_name, pager = PAGERS[crm]
    started = time.monotonic()
    with running_sandboxes([crm], scale=scale, seed=seed, extra=("--no-rate-limits",)) as info:
        seed_seconds = time.monotonic() - started
        sandbox = info[crm]
        expected = httpx.get(f"{sandbox['base_url']}/__sandbox__/stats").json()[stats_name]["live"]
        t0 = time.perf_counter()
        records, pages = await pager(sandbox)
        elapsed = time.perf_counter() - t0
        peak = peak_rss_mb(info["pid"])
    return {
        "crm": crm,
        "scale": scale,
        "records": records,
        "expected_records": expected,
        "pages": pages,
        "seconds": round(elapsed, 2),
        "records_per_s": round(records / elapsed, 1),
        "seed_seconds": round(seed_seconds, 1),
        "peak_rss_mb": peak,
    }

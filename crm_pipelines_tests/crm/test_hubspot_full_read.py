"""Issue 17 (OPS-1): a full HubSpot read uses the list endpoint and search at once, each on its own rate bucket,
and returns exactly what a read through search alone returns. Against the sandbox over loopback HTTP, with
its published rate limits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from crm_pipelines.crm.hubspot.full_read import iter_both_buckets
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.crm.test_hubspot_connector import client, collect
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

PROPS = ["email", "firstname", "lastname", "lifecyclestage", "hubspot_owner_id", "lastmodifieddate"]
LIST = "GET /crm/v3/objects/{type}"
SEARCH = "POST /crm/v3/objects/{type}/search"


def test_full_read_on_both_buckets_returns_what_search_alone_returns(hubspot_live: RunningSandbox) -> None:
    """Same ids, each once, with the same properties and times as the search-only read; both endpoints used
    in proportion to their buckets, none throttled."""
    meter = Meter()

    async def run() -> tuple[list[dict], list[dict]]:
        async with client(hubspot_live) as hs:
            by_search = await collect(hs.iter_full_by_search("contacts", PROPS))
        async with client(hubspot_live, meter) as hs:
            both = await collect(hs.iter_full("contacts", PROPS))
        return by_search, both

    by_search, both = asyncio.run(run())
    with hubspot_live.admin() as admin:
        live = admin.get("/stats").json()["contacts"]["live"]
    ids = [r["id"] for r in both]
    assert len(ids) == len(set(ids)) == live
    assert sorted(both, key=lambda r: int(r["id"])) == sorted(by_search, key=lambda r: int(r["id"]))
    list_calls, search_calls = meter.count(endpoint=LIST), meter.count(endpoint=SEARCH)
    assert list_calls > 0 and search_calls > 0
    # each walker read its own part: no id range read twice beyond the one page where they met
    assert list_calls * 100 + search_calls * 200 <= live + 300
    assert meter.statuses().get(429, 0) == 0


def test_every_object_the_extract_reads_is_read_whole(hubspot_live: RunningSandbox) -> None:
    """Companies, deals and tasks: the same records through both buckets as through search alone."""
    objects = {"companies": ["name", "domain"], "deals": ["dealname", "amount"], "tasks": ["hs_task_subject"]}

    async def run() -> dict[str, tuple[list[dict], list[dict]]]:
        async with client(hubspot_live) as hs:
            return {
                obj: (await collect(hs.iter_full(obj, props)), await collect(hs.iter_full_by_search(obj, props)))
                for obj, props in objects.items()
            }

    for obj, (both, by_search) in asyncio.run(run()).items():
        assert len({r["id"] for r in both}) == len(both) == len(by_search) > 0, obj
        assert sorted(both, key=lambda r: int(r["id"])) == sorted(by_search, key=lambda r: int(r["id"])), obj


def test_a_list_out_of_id_order_leaves_the_rest_to_search() -> None:
    """HubSpot documents the list cursor as opaque (FACTS §1): should its pages ever come out of id order, the
    read still returns every record once (search reads what the list no longer vouches for). Pages out of
    order cannot be produced by the sandbox, so both endpoints are plain functions here."""
    records = {i: {"id": str(i)} for i in range(1, 1001)}

    async def list_pages(object_type: str, properties: Sequence[str]) -> AsyncGenerator[list[dict[str, Any]], None]:
        yield [records[i] for i in range(1, 101)]
        yield [records[i] for i in (150, 120, 130)]  # out of order
        yield [records[i] for i in range(101, 201)]

    async def search(object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # the list walker goes first
        filters = body["filterGroups"][0]["filters"] if body["filterGroups"] else []
        below = int(filters[0]["value"]) if filters else 10**9
        ids = sorted((i for i in records if i < below), reverse=True)[: body["limit"]]
        return {"results": [records[i] for i in ids]}

    async def run() -> list[dict]:
        return await collect(iter_both_buckets("contacts", [], list_pages=list_pages, search=search))

    ids = [int(r["id"]) for r in asyncio.run(run())]
    assert sorted(ids) == list(range(1, 1001))

"""Reads through the Dynamics connector against the sandbox over HTTPS, with the published limits on."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid

from crm_pipelines.crm.dynamics.odata import where
from crm_pipelines.crm.dynamics.values import parse_timestamp
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

SELECT = ["contactid", "fullname", "emailaddress1", "modifiedon"]


async def collect(pages) -> list[dict]:
    return [record async for page in pages for record in page]


def direct_ids(sandbox: RunningSandbox, entity_set: str, pk: str) -> list[str]:
    """Every id read with plain httpx, page by page, as a yardstick for the connector."""
    ids: list[str] = []
    with api(sandbox, Prefer="odata.maxpagesize=5000") as http:
        r = http.get(entity_set, params={"$select": pk})
        while True:
            body = r.json()
            ids += [v[pk] for v in body["value"]]
            if "@odata.nextLink" not in body:
                return ids
            r = http.get(body["@odata.nextLink"])


def test_full_read_returns_exactly_the_sandboxs_contacts_in_pages_of_5000(dynamics_live: RunningSandbox) -> None:
    """Issue 5 "Done when": a full read returns exactly the sandbox's records (stats and a direct read agree),
    paging with odata.maxpagesize=5000 and @odata.nextLink: one call per 5,000 rows, none throttled."""
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter) as dyn:
            return await collect(dyn.iter_all("contacts", SELECT))

    records = asyncio.run(run())
    with dynamics_live.admin() as admin:
        live = admin.get("/stats").json()["contacts"]["live"]
    ids = [r["contactid"] for r in records]
    assert live > 5000  # more than one page
    assert len(ids) == len(set(ids)) == live
    assert sorted(ids) == sorted(direct_ids(dynamics_live, "contacts", "contactid"))
    assert meter.count(endpoint="GET /contacts") == math.ceil(live / 5000)  # (and a login, unless one is kept)
    assert meter.statuses().get(429, 0) == 0
    assert "@odata.etag" in records[0] and set(SELECT) <= set(records[0])  # the row as the API returned it


def test_modifiedon_window_and_its_count_match_the_rows_in_it(dynamics_live: RunningSandbox) -> None:
    """Issue 5 + OPS-7: a modifiedon window returns exactly its rows, and count_modified counts them, also past
    the 5,000 $count cap (then the window's ids are counted page by page)."""
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter) as dyn:
            everything = await collect(dyn.iter_all("contacts", SELECT))
            stamps = sorted(parse_timestamp(r["modifiedon"]) for r in everything)
            lo, hi = stamps[0], stamps[-1] + dt.timedelta(seconds=1)
            mid = stamps[len(stamps) // 3]
            part = await collect(dyn.iter_modified("contacts", lo, mid, SELECT))
            part_count = await dyn.count_modified("contacts", lo, mid)
            meter.calls.clear()
            total = await dyn.count_modified("contacts", lo, hi)
            total_calls = meter.count()
            return everything, mid, part, part_count, total, total_calls

    everything, mid, part, part_count, total, total_calls = asyncio.run(run())
    expected = {r["contactid"] for r in everything if parse_timestamp(r["modifiedon"]) < mid}
    ids = [r["contactid"] for r in part]
    assert ids and len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    assert part_count == len(expected)
    assert total == len(everything) > 5000
    assert total_calls == 1 + math.ceil(len(everything) / 5000)  # $count, then the ids past its cap
    modified = [parse_timestamp(r["modifiedon"]) for r in part]
    assert modified == sorted(modified)  # oldest change first


def test_a_literal_with_a_quote_filters_correctly(dynamics_live: RunningSandbox) -> None:
    """Issue 5: OData literals are escaped; o'brien is data, never syntax, and finds exactly its row."""
    tag = uuid.uuid4().hex[:8]

    async def run():
        async with client(dynamics_live) as dyn:
            made = await dyn.write(
                "create",
                "contacts",
                [
                    {"record": {"lastname": "O'Brien", "firstname": tag}},
                    {"record": {"lastname": "OBrien", "firstname": tag}},
                    {"record": {"lastname": "O''Brien", "firstname": tag}},
                ],
            )
            one = await collect(
                dyn.iter_pages(
                    "contacts",
                    ["contactid", "lastname"],
                    filter=where("lastname", "eq", "o'brien") & where("firstname", "eq", tag),
                )
            )
            two = await collect(
                dyn.iter_pages(
                    "contacts",
                    ["contactid", "lastname"],
                    filter=where("lastname", "eq", "O''Brien") & where("firstname", "eq", tag),
                )
            )
            return made, one, two

    made, one, two = asyncio.run(run())
    assert all(o.ok for o in made)
    assert [r["contactid"] for r in one] == [made[0].id]
    assert one[0]["lastname"] == "O'Brien"  # compared case-insensitively, as Dataverse's collation does
    assert [r["contactid"] for r in two] == [made[2].id]

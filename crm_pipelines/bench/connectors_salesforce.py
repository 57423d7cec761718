"""The Salesforce part of ``crm-pipelines bench connectors``: a full read of each object, the org's limits on.

Large objects are read as the bulk import reads them, through Bulk API 2.0 query jobs; the reference
objects (OpportunityStage, RecordType, User) through REST ``query``.

What is counted:
- ``api_calls``: every HTTP attempt against the instance (retries included). The OAuth token request goes
  to the login host and is not an API call of the org's allocation, so it is not counted; describe calls
  (one per object, to choose the fields and type the CSV) are made before the clock starts.
- ``min_api_calls``, REST query: records ÷ 2,000 (the largest ``query`` batch), rounded up, at least 1.
- ``min_api_calls``, Bulk API 2.0: 1 job create + 1 status poll + records ÷ ``maxRecords`` result pages,
  rounded up. The bulk API sets no fixed ``maxRecords`` ceiling (results are split by size), so the page is
  the connector's 50,000; ``rest_min_api_calls`` gives the REST floor (records ÷ 2,000) for comparison —
  the bulk read beats it as soon as an object holds more than 6,000 records.
- ``bound_s`` = min_api_calls * 86,400 s ÷ daily allocation: the time the published limits allow at their
  sustained rate, the allocation being Salesforce's only rate limit (100,000 calls in any rolling 24 h; no
  per-second limit). Within the allocation calls may burst, bounded only by the 25 concurrent long-running
  (≥ 20 s) requests, which short calls never reach; so wall_s stays below bound_s (time_ratio < 1).
- ``http_429``: Salesforce never sends 429; its throttling answer, 403 ``REQUEST_LIMIT_EXCEEDED``, is
  counted under that key.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from crm_pipelines import catalog
from crm_pipelines.bench.connectors import figures
from crm_pipelines.crm.http import verify_option
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.auth import ClientCredentials
from crm_pipelines.crm.salesforce.bulk import BULK_PAGE_RECORDS
from crm_pipelines.crm.salesforce.client import QUERY_BATCH_MAX, SalesforceClient
from crm_pipelines.crm.salesforce.dialect import DAY_S
from crm_pipelines.crm.salesforce.soql import Name, Names, soql
from crm_pipelines.extract.salesforce import FIELDS

# object -> read through Bulk API 2.0 (the partitioned objects, as the bulk import reads them); reference
# objects are read through REST query
OBJECTS = {o.name: o.partitioned for o in catalog.objects("salesforce")}

BULK_FIXED_CALLS = 2  # job create + one status poll


def _figures(records: int, calls: int, bulk: bool, wall_s: float, throttled: int, allocation: int) -> dict:
    rate = allocation / DAY_S
    if not bulk:
        return {"method": "query", **figures(records, calls, QUERY_BATCH_MAX, rate, wall_s, throttled)}
    out = figures(records, calls, BULK_PAGE_RECORDS, rate, wall_s, throttled)
    least = BULK_FIXED_CALLS + max(1, math.ceil(records / BULK_PAGE_RECORDS))
    bound_s = least / rate
    out.update(
        min_api_calls=least,
        calls_ratio=round(calls / least, 3),
        bound_s=round(bound_s, 2),
        time_ratio=round(wall_s / bound_s, 3),
    )
    return {"method": "bulk", **out, "rest_min_api_calls": math.ceil(records / QUERY_BATCH_MAX) or 1}


async def bench_salesforce(info: dict[str, Any]) -> dict[str, dict]:
    creds = info["credentials"]
    ca_bundle = info.get("ca_bundle")
    meter = Meter()
    auth = ClientCredentials("salesforce", creds["consumer_key"], creds["consumer_secret"], login_url=info["base_url"])
    out: dict[str, dict] = {}
    async with SalesforceClient(
        "salesforce", auth, api_version=creds.get("api_version", "62.0"), meter=meter, ca_bundle=ca_bundle
    ) as sf:
        allocation = int((await sf.limits())["DailyApiRequests"]["Max"])
        for obj, large in OBJECTS.items():
            described = await sf.describe(obj)
            fields = [f for f in FIELDS[obj] if described.field(f) is not None]
            query = soql("SELECT {fields} FROM {obj}", fields=Names(fields), obj=Name(obj))
            meter.calls.clear()
            started = time.perf_counter()
            records = 0
            pages = sf.iter_bulk(query, described.fields) if large else sf.iter_query(query)
            async for page in pages:
                records += len(page)
            wall = time.perf_counter() - started
            throttled = sum(n for status, n in meter.statuses().items() if status in (403, 429))
            out[f"salesforce.{obj}"] = _figures(records, meter.count(), large, wall, throttled, allocation)
        counts = {obj: await sf.count(soql("SELECT COUNT() FROM {obj}", obj=Name(obj))) for obj in OBJECTS}
    stats = httpx.get(f"{info['base_url']}/__sandbox__/stats", verify=verify_option(ca_bundle)).json()
    for obj in OBJECTS:
        expected = stats[obj]["live"] if obj in stats else counts[obj]
        if out[f"salesforce.{obj}"]["records"] != expected or counts[obj] != expected:
            raise AssertionError(f"salesforce.{obj}: read {out[f'salesforce.{obj}']}, the sandbox holds {expected}")
    return out

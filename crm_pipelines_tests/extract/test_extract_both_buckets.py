"""Issue 17 (OPS-1, OPS-7): the bulk import reads a window holding most of an object's records through the list
endpoint and search at once; short windows (incremental syncs) keep search alone. Through the HubSpot sandbox
over loopback HTTP, its rate limits on, into both state database backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.extract.hubspot import BOTH_BUCKETS_MIN_RECORDS, BOTH_BUCKETS_MIN_SHARE, HubSpotObject
from crm_pipelines.extract.runner import ExtractResult, extract
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import mirror_records, sandbox_records
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

LIST = "GET /crm/v3/objects/{type}"
SEARCH = "POST /crm/v3/objects/{type}/search"
ASSOCIATIONS = "POST /crm/v4/associations/{from}/{to}/batch/read"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def hubspot_mid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """Enough contacts (about 5,800) that the whole history is worth both buckets."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("hubspot-mid"), scale=8_000, seed=7)
    yield sandbox
    sandbox.stop()


def _extract(
    sandbox: RunningSandbox, state_url: str, start: datetime, end: datetime, *, sweep: bool = True
) -> tuple[ExtractResult, Meter]:
    meter = Meter()

    async def run() -> ExtractResult:
        async with HubSpotClient("hubspot", sandbox.base_url, PrivateAppToken(sandbox.token), meter=meter) as hs:
            source = HubSpotObject(hs, "contacts")
            return await extract(source, create_state_engine(state_url), start, end, sweep_deletions=sweep)

    return asyncio.run(run()), meter


def _calls(meter: Meter, endpoint: str) -> int:
    """The calls the read made: first attempts. A rare 429 (the server counted a search in a second our pacing
    had already left, ``crm/ratelimit.py``) is answered by one retry of the same call, which is not another
    call the read needed (seen under CI's load: 15 search attempts for 14 calls)."""
    return sum(1 for c in meter.calls if c.endpoint == endpoint and c.attempt == 1)


def test_the_whole_history_is_read_through_both_buckets_into_the_mirror(
    hubspot_mid: RunningSandbox, state_url: str
) -> None:
    """Every contact once, field for field as the CRM holds it, counted complete (OPS-7) by the first search
    page's total, associations as the v4 batch read gives them (the list's inline, search's in batches); the list
    endpoint and search both used, nothing throttled."""
    result, meter = _extract(hubspot_mid, state_url, EPOCH, datetime.now(UTC) + timedelta(days=1))
    expected = sandbox_records(hubspot_mid, "contacts")
    assert len(expected) > BOTH_BUCKETS_MIN_RECORDS + 200
    assert result.read == result.upserted == result.crm_count == len(expected) and result.complete
    records, _ = mirror_records(state_url, "contacts")
    assert set(records) == set(expected)
    for record_id, props in expected.items():
        assert {k: v for k, v in records[record_id].items() if k in props} == props, record_id
    assert _calls(meter, LIST) > 0 and _calls(meter, SEARCH) > 0
    assert result.associations > 0
    # the associations (contacts -> companies) are exactly those the v4 batch read gives for every contact
    assert _mirrored_associations(state_url) == _v4_associations(hubspot_mid, sorted(expected))
    # OPS-2: the list's records brought theirs inline; only search's are read in batches, full batches of 1,000
    # ids whatever the pages' sizes (a split batch would spend the 10-second bucket the list endpoint reads on)
    searched = min(len(expected), 200 * _calls(meter, SEARCH))
    assert 0 < _calls(meter, ASSOCIATIONS) <= -(-searched // 1_000) < -(-len(expected) // 1_000)
    assert meter.statuses().get(429, 0) == 0


def _mirrored_associations(state_url: str) -> set[tuple]:
    rows, _ = mirror_records(state_url, "associations")
    return {(r["from_id"], r["to_id"], r["type_id"], r["category"], r["label"])
            for r in rows.values() if r["from_type"] == "contacts"}


def _v4_associations(sandbox: RunningSandbox, ids: list[str]) -> set[tuple]:
    async def read() -> dict[str, list[dict]]:
        async with HubSpotClient("hubspot", sandbox.base_url, PrivateAppToken(sandbox.token)) as hs:
            return await hs.associations("contacts", "companies", ids)

    return {(from_id, str(t["toObjectId"]), kind["typeId"], kind["category"], kind["label"])
            for from_id, targets in asyncio.run(read()).items() for t in targets for kind in t["associationTypes"]}


def test_a_short_window_keeps_search_alone(hubspot_mid: RunningSandbox, state_url: str) -> None:
    """An incremental-sized window (under BOTH_BUCKETS_MIN_RECORDS records) spends ceil(N / 200) search calls
    and no list call."""
    engine = create_state_engine(state_url)
    stamps = sorted(
        datetime.fromisoformat(p["lastmodifieddate"].replace("Z", "+00:00"))
        for p in sandbox_records(hubspot_mid, "contacts").values()
    )
    start, end = stamps[-1_000], stamps[-1] + timedelta(milliseconds=1)  # the last thousand changes
    # the deletion sweep pages archived records through the list endpoint; it is not the window's read
    result, meter = _extract(hubspot_mid, state_url, start, end, sweep=False)
    assert 0 < result.read < BOTH_BUCKETS_MIN_RECORDS and result.complete
    assert _calls(meter, LIST) == 0
    assert _calls(meter, SEARCH) == -(-result.read // 200)
    assert mirror.counts(engine, "hubspot", "contacts")["live"] == result.read


def test_a_long_window_holding_under_half_the_records_keeps_search_alone(
    hubspot_mid: RunningSandbox, state_url: str
) -> None:
    """The list endpoint cannot filter by time: for a window holding less than half of the records it would
    read more than it keeps and spend the 24 h budget (OPS-2) on it, so search reads it alone, for one more
    call (the count of all records that decided it)."""
    stamps = sorted(
        datetime.fromisoformat(p["lastmodifieddate"].replace("Z", "+00:00"))
        for p in sandbox_records(hubspot_mid, "contacts").values()
    )
    count = BOTH_BUCKETS_MIN_RECORDS + 500
    assert count < len(stamps) * BOTH_BUCKETS_MIN_SHARE
    start, end = stamps[-count], stamps[-1] + timedelta(milliseconds=1)
    result, meter = _extract(hubspot_mid, state_url, start, end, sweep=False)
    assert result.read >= count and result.complete
    assert _calls(meter, LIST) == 0
    assert _calls(meter, SEARCH) == -(-result.read // 200) + 1

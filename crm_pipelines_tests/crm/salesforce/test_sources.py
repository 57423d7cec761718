"""Issue 5/6 (Salesforce): the extraction sources — SystemModstamp windows by REST or bulk, reference objects,
deletions — and one run of the extraction runner into a SQLite mirror."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from crm_pipelines.crm.metering import Meter
from crm_pipelines.extract.runner import extract
from crm_pipelines.extract.salesforce import SalesforceObject, SalesforceReference, make_salesforce_source
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.crm.salesforce.conftest import client, direct_query, stats
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_long_windows_go_through_bulk_and_short_ones_through_query(sf: RunningSandbox) -> None:
    """Issue 5: full reads of large objects by Bulk API 2.0, small windows by REST query — same mirror rows
    (18-char Id, aware SystemModstamp, the record without `attributes`)."""
    meter = Meter()
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    async def run():
        async with client(sf, meter) as sfc:
            source = make_salesforce_source(sfc, "Contact")
            assert isinstance(source, SalesforceObject)
            source.bulk_min_records = 1_000  # the sandbox is small; the rule is the same
            full = [r async for page in source.read_window(EPOCH, now) for r in page]
            bulk_windows = source.bulk_windows
            stamps = sorted(r.modified_at for r in full)
            day_end = stamps[0] + dt.timedelta(days=1)  # a daily partition: REST, no count first
            meter.calls.clear()
            day = [r async for page in source.read_window(stamps[0], day_end) for r in page]
            return full, bulk_windows, day, day_end, meter.summary()["salesforce"]

    full, bulk_windows, day, day_end, day_calls = asyncio.run(run())
    assert bulk_windows == 1 and len({r.id for r in full}) == len(full) == stats(sf)["Contact"]["live"]
    row = full[0]
    assert len(row.id) == 18 and "attributes" not in row.record and row.record["Id"] == row.id
    assert row.modified_at is not None and row.modified_at.tzinfo is not None
    by_id = {r.id: r for r in full}
    assert day and all(by_id[r.id].record == r.record for r in day)  # bulk and REST rows are alike
    assert {r.id for r in day} == {r.id for r in full if r.modified_at < day_end}
    assert list(day_calls) == ["GET /services/data/vXX.X/query"]  # one call, no COUNT() for a short window


def test_reference_objects_are_read_whole(sf: RunningSandbox) -> None:
    """Issue 5: OpportunityStage, RecordType and User are unpartitioned reference objects, read by query."""

    async def run():
        async with client(sf) as sfc:
            out = {}
            for obj in ("OpportunityStage", "RecordType", "User"):
                source = make_salesforce_source(sfc, obj)
                assert isinstance(source, SalesforceReference) and source.partitioned is False
                out[obj] = [r async for page in source.read_window(EPOCH, EPOCH) for r in page]
            return out

    read = asyncio.run(run())
    for obj, rows in read.items():
        assert sorted(r.id for r in rows) == sorted(r["Id"] for r in direct_query(sf, f"SELECT Id FROM {obj}"))
    assert "Closed Won" in {r.record["ApiName"] for r in read["OpportunityStage"]}


def test_runner_mirrors_an_object_and_flags_its_deletions(sf: RunningSandbox, tmp_path: Path) -> None:
    """Issue 6 with the Salesforce source: the runner's read matches the sandbox (OPS-7 check complete); a UI
    deletion is flagged on the next run, found by getDeleted within its 15-day reach."""
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    async def run():
        async with client(sf) as sfc:
            source = SalesforceObject(sfc, "Account")
            first = await extract(source, engine, EPOCH, now)
            live = stats(sf)["Account"]["live"]
            victim = (await anext(sfc.iter_query("SELECT Id FROM Account LIMIT 1")))[0]["Id"]
            with sf.admin() as admin:
                admin.delete(f"/ui/Account/{victim}").raise_for_status()
            second = await extract(source, engine, EPOCH, now, incremental=True)
            return first, second, victim, live

    first, second, victim, live = asyncio.run(run())
    assert first.read == live and first.complete is True
    assert second.deleted >= 1
    with engine.connect() as conn:
        table = mirror.table_for("salesforce", "Account")
        flagged = conn.execute(table.select().where(table.c.id == victim)).mappings().one()
    assert flagged["deleted"] is True and flagged["deleted_at"] is not None

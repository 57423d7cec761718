"""Dynamics tables as extraction sources, through the extraction runner into a SQLite state database."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from crm_pipelines.extract.dynamics import CursorDeltaLinks, make_dynamics_source
from crm_pipelines.extract.runner import extract
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_extract_fills_the_mirror_completely_and_flags_deletions(dynamics_live: RunningSandbox, tmp_path: Path):
    """OPS-1/OPS-7/DEL-5: a window read lands every row (id = GUID, modified_at = modifiedon, record as returned)
    with the CRM's count equal to the mirror's; a later incremental run flags a row deleted in the UI."""
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    links = CursorDeltaLinks(engine)
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    async def run():
        async with client(dynamics_live) as dyn:
            opportunities = make_dynamics_source(dyn, "opportunities", links)
            first = await extract(opportunities, engine, EPOCH, far)
            with dynamics_live.admin() as admin:
                doomed = mirror.read_records(engine, "dynamics", "opportunities")["id"].iloc[0]
                admin.delete(f"/ui/opportunities/{doomed}").raise_for_status()
            second = await extract(opportunities, engine, EPOCH, far, incremental=True)
            users = await extract(make_dynamics_source(dyn, "systemusers"), engine, EPOCH, far)
            return first, doomed, second, users

    first, doomed, second, users = asyncio.run(run())
    with dynamics_live.admin() as admin:
        stats = admin.get("/stats").json()
    assert first.read == first.crm_count == first.mirror_count == stats["opportunities"]["live"] + 1
    assert first.complete and first.deleted == 0  # the first sweep starts the deletion feed
    assert second.deleted == 1 and second.complete
    frame = mirror.read_records(engine, "dynamics", "opportunities")
    assert frame.loc[frame["id"] == doomed, "deleted"].item()
    row = frame.iloc[-1]
    assert row["modified_at"].tzinfo is not None and len(row["id"]) == 36 and "salesstage" in frame.columns
    assert users.read == stats["systemusers"]["live"] == mirror.counts(engine, "dynamics", "systemusers")["live"]
    assert links.get("opportunities", "deletions")

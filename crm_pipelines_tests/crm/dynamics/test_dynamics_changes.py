"""Change tracking through the connector: delta links with changes and deletions (FACTS §G)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from crm_pipelines.crm.dynamics.client import DeltaLinkExpired
from crm_pipelines.extract.dynamics import DynamicsObject, MemoryDeltaLinks
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def ui(sandbox: RunningSandbox, method: str, path: str, **kw) -> dict:
    """A person working in Dynamics' UI (the sandbox's admin routes)."""
    with sandbox.admin() as admin:
        r = admin.request(method, f"/ui/{path}", **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else {}


def test_delta_link_reports_new_changed_and_deleted_rows(dynamics_live: RunningSandbox) -> None:
    """Issue 5: incremental reads by change tracking, deletions included in the deleted-entity shape; the
    initial tracked read returns every live row once, and each delta link continues where the last ended."""

    async def run():
        async with client(dynamics_live) as dyn:
            initial = [p async for p in dyn.changes("accounts", ["accountid", "name"])]
            link = initial[-1].delta_link
            created = ui(dynamics_live, "POST", "accounts", json={"name": f"New {uuid.uuid4().hex[:6]}"})
            first, second = initial[0].records[0]["accountid"], initial[0].records[1]["accountid"]
            ui(dynamics_live, "PATCH", f"accounts/{first}", json={"name": "Renamed in the UI"})
            ui(dynamics_live, "DELETE", f"accounts/{second}")
            delta = [p async for p in dyn.changes("accounts", ["accountid", "name"], link)]
            after = [p async for p in dyn.changes("accounts", ["accountid", "name"], delta[-1].delta_link)]
            return initial, created, first, second, delta, after

    initial, created, first, second, delta, after = asyncio.run(run())
    with dynamics_live.admin() as admin:
        live_before = admin.get("/stats").json()["accounts"]["live"]  # one created and one deleted since: same
    ids = [r["accountid"] for p in initial for r in p.records]
    assert len(ids) == len(set(ids)) == live_before and not any(p.deleted for p in initial)
    assert all(p.delta_link is None for p in initial[:-1]) and initial[-1].delta_link
    changed = {r["accountid"]: r for p in delta for r in p.records}
    assert set(changed) == {created["accountid"], first}
    assert changed[first]["name"] == "Renamed in the UI"
    assert [i for p in delta for i in p.deleted] == [second]
    assert [(p.records, p.deleted) for p in after] == [([], [])]


def test_the_extraction_source_sweeps_deletions_on_its_delta_link(dynamics_live: RunningSandbox) -> None:
    """SPEC DEL-5 for Dynamics: the source starts tracking on its first sweep, then reports each deletion once;
    read_changes (its own feed, unmoved by the sweep) yields changed rows, then deletions flagged as such."""
    links = MemoryDeltaLinks()

    async def run():
        async with client(dynamics_live) as dyn:
            source = DynamicsObject(dyn, "leads", links)
            since = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            first = await source.deleted_since(since)
            changes_before = [row async for page in source.read_changes() for row in page]
            kept = ui(dynamics_live, "POST", "leads", json={"subject": "Kept", "lastname": "Poe"})
            lead = ui(dynamics_live, "POST", "leads", json={"subject": "Doomed", "lastname": "Doe"})
            ui(dynamics_live, "DELETE", f"leads/{lead['leadid']}")
            doomed = ui(dynamics_live, "POST", "leads", json={"subject": "Doomed too", "lastname": "Roe"})
            ui(dynamics_live, "DELETE", f"leads/{doomed['leadid']}")
            swept = await source.deleted_since(since)
            again = await source.deleted_since(since)
            changes = [row async for page in source.read_changes() for row in page]
            return first, changes_before, kept, lead, doomed, swept, again, changes

    first, changes_before, kept, lead, doomed, swept, again, changes = asyncio.run(run())
    assert first == []  # the first sweep only starts tracking
    assert len(changes_before) > 1000 and not any(r.deleted for r in changes_before)  # the changes feed's start
    assert [d.id for d in swept] == [lead["leadid"], doomed["leadid"]]
    assert all(d.deleted_at and d.deleted_at.tzinfo for d in swept)
    assert again == []
    assert [(r.id, r.deleted) for r in changes] == [
        (kept["leadid"], False),
        (lead["leadid"], True),
        (doomed["leadid"], True),
    ]
    assert changes[0].record["subject"] == "Kept" and changes[0].modified_at.tzinfo is not None


def test_an_expired_delta_link_is_reported_and_tracking_restarts(dynamics_live: RunningSandbox) -> None:
    """FACTS §G: a delta token older than the organization keeps changes is refused; the connector raises a
    typed DeltaLinkExpired and the source starts a fresh feed instead of failing the run."""
    org = dynamics_live.credentials["api_url"]
    stale = f"{org}/contacts?$select=contactid&$deltatoken=5%2101%2F01%2F2020%2000%3A00%3A00"
    links = MemoryDeltaLinks()
    links.set("contacts", "deletions", stale)

    async def run():
        async with client(dynamics_live) as dyn:
            with pytest.raises(DeltaLinkExpired) as expired:
                [p async for p in dyn.changes("contacts", ["contactid"], stale)]
            swept = await DynamicsObject(dyn, "contacts", links).deleted_since(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
            return expired.value, swept

    error, swept = asyncio.run(run())
    assert error.status == 400 and "expired" in error.api_message
    assert swept == [] and links.get("contacts", "deletions") not in (None, stale)

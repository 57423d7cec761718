"""Extraction into the mirror through real Dagster runs (issue 6): the bulk import backfill (OPS-1),
deletions flagged (DEL-5), the change sensor, and a killed backfill resumed. Each test runs on SQLite
and on PostgreSQL (the ``state_url`` fixture)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
import yaml

from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.backfill import bulk_import
from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.extract.hubspot import PROPERTIES, HubSpotObject
from crm_pipelines.extract.runner import DELETIONS, extract
from crm_pipelines.settings import Settings
from crm_pipelines.state import mirror
from crm_pipelines.state.cursors import set_cursor
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

OBJECTS = ("contacts", "companies", "deals")


def backfill(instance: dg.DagsterInstance, settings, assets, resources, selection=None) -> None:
    """What a backfill launched from the UI does: runs of up to `partitions_per_run` partitions each."""
    for run in bulk_import(instance, settings, assets, resources, selection):
        assert run.result.success, (run.first, run.last)


def evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources):
    """One tick, as the daemon runs it (the per-CRM resources nest, so the context is entered)."""
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return sensor(context)


def sync_changes(settings, extract, instance: dg.DagsterInstance, resources) -> int:
    """The change sensor's tick and every extract run it requests, as the daemon launches them; the number of
    runs. (``unified`` and the plans follow by their own automation; tests materialize them next.)"""
    sensor = build_change_sensor(settings, daily_partitions(settings.extract))
    requests = evaluate(sensor, instance, resources).run_requests
    for request in requests:
        run = dg.materialize(extract, selection=request.asset_selection, instance=instance, resources=resources,
                             partition_key=request.partition_key, tags=request.tags)
        assert run.success, request.asset_selection
    return len(requests)


def sandbox_settings(path: Path, sandbox: RunningSandbox, state_url: str, **sections) -> Path:
    """A settings file for runs on ``sandbox``: the last 20 days extracted, 8 partitions a run, plus
    ``sections`` (``sync=...``)."""
    path.write_text(yaml.safe_dump({
        "state_database_url": state_url,
        "sandbox": {"data_dir": str(sandbox.data_dir)},
        "extract": {"partitions_per_run": 8, "start_date": (date.today() - timedelta(days=20)).isoformat()},
        **sections,
    }))  # fmt: skip
    return path


def sandbox_records(sandbox: RunningSandbox, obj: str) -> dict[str, dict]:
    async def read() -> dict[str, dict]:
        async with HubSpotClient("check", sandbox.base_url, PrivateAppToken(sandbox.token)) as hs:
            return {r["id"]: r["properties"] async for page in hs.iter_all(obj, PROPERTIES[obj]) for r in page}

    return asyncio.run(read())


def mirror_records(state_url: str, obj: str) -> tuple[dict[str, dict], set[str]]:
    frame = mirror.read_records(create_state_engine(state_url), "hubspot", obj)
    live = frame[~frame["deleted"]]
    fields = [c for c in live.columns if c not in ("id", "modified_at", "deleted")]
    records = {row["id"]: {f: None if pd.isna(row[f]) else row[f] for f in fields} for row in live.to_dict("records")}
    return records, set(frame.loc[frame["deleted"], "id"])


def test_backfill_of_all_partitions_is_the_bulk_import(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """OPS-1: a backfill over every daily partition leaves the mirror holding exactly the CRM's records,
    field for field, with records deleted beforehand flagged (DEL-5) and none dropped."""
    settings, assets, resources = extract_defs
    doomed = list(sandbox_records(hubspot_sandbox, "contacts"))[:3]
    with hubspot_sandbox.admin() as admin:
        for record_id in doomed:
            admin.delete(f"/ui/contacts/{record_id}").raise_for_status()
        stats = admin.get("/stats").json()

    backfill(instance, settings, assets, resources)

    for obj in OBJECTS:
        expected = sandbox_records(hubspot_sandbox, obj)
        records, deleted = mirror_records(state_url, obj)
        assert set(records) == set(expected), obj
        for record_id, props in expected.items():
            got = {k: v for k, v in records[record_id].items() if k in props}
            assert got == {k: v for k, v in props.items()}, (obj, record_id)
        assert len(deleted) == stats[obj]["deleted"]
    assert set(doomed) <= mirror_records(state_url, "contacts")[1]
    engine = create_state_engine(state_url)
    assert mirror.counts(engine, "hubspot", "owners")["live"] == stats["owners"]["live"]
    assert mirror.counts(engine, "hubspot", "pipelines")["live"] == 2

    # every daily partition shows materialized (the UI's partition bar), with Dagster's events batched; the
    # Dagster storage is the session's PostgreSQL database, shared with the other tests, whose materializations
    # of these assets may cover other days (started before midnight, or with another start date)
    keys = set(daily_partitions(settings.extract).get_partition_keys(current_time=datetime.now(UTC)))
    for obj in OBJECTS:
        assert keys <= instance.get_materialized_partitions(dg.AssetKey(["hubspot", obj])), obj

    # completeness (OPS-7) passed for every run, and runs report what they did
    checks = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey(["hubspot", "contacts"]), "complete")
    )
    assert checks is not None and checks.event.dagster_event.event_specific_data.passed
    materialization = instance.get_latest_materialization_event(dg.AssetKey(["hubspot", "contacts"]))
    metadata = materialization.asset_materialization.metadata
    assert metadata["api_calls"].value > 0 and "window_start" in metadata

    # re-running is idempotent: same mirror
    before = mirror_records(state_url, "deals")
    backfill(instance, settings, assets, resources)
    assert mirror_records(state_url, "deals") == before


def test_change_sensor_requests_exactly_the_changes_and_then_nothing(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """The sensor polls cheaply, requests a run of today's partition for objects that changed (keyed so
    no change is fetched twice), the runs bring exactly those edits and deletions, and a second evaluation
    requests nothing."""
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    contacts = list(sandbox_records(hubspot_sandbox, "contacts"))
    deal = next(iter(sandbox_records(hubspot_sandbox, "deals")))
    title = f"Head of {uuid.uuid4().hex[:6]}"
    with hubspot_sandbox.admin() as admin:
        admin.patch(f"/ui/contacts/{contacts[0]}", json={"properties": {"jobtitle": title}}).raise_for_status()
        admin.patch(f"/ui/deals/{deal}", json={"properties": {"dealname": "Renamed deal"}}).raise_for_status()
        admin.delete(f"/ui/contacts/{contacts[1]}").raise_for_status()

    sensor = build_change_sensor(settings, daily_partitions(settings.extract))
    result = evaluate(sensor, instance, resources)
    requested = sorted(tuple(r.asset_selection[0].path) for r in result.run_requests)
    assert requested == [("hubspot", "contacts"), ("hubspot", "deals")]
    for request in result.run_requests:  # each run selects only its object: the others are not read
        run = dg.materialize(
            assets,
            selection=request.asset_selection,
            instance=instance,
            resources=resources,
            partition_key=request.partition_key,
        )
        assert run.success
        assert {e.asset_key for e in run.get_asset_materialization_events()} == set(request.asset_selection)

    records, deleted = mirror_records(state_url, "contacts")
    assert records[contacts[0]]["jobtitle"] == title
    assert contacts[1] in deleted and contacts[1] not in records
    assert mirror_records(state_url, "deals")[0][deal]["dealname"] == "Renamed deal"

    again = evaluate(sensor, instance, resources)
    assert again.run_requests == []


def test_deletion_alone_is_found_by_the_periodic_sweep(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """DEL-5: a deletion leaves no trace in change polls, so each object's sweep is requested when due."""
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    company = next(iter(sandbox_records(hubspot_sandbox, "companies")))
    with hubspot_sandbox.admin() as admin:
        admin.delete(f"/ui/companies/{company}").raise_for_status()
    sensor = build_change_sensor(settings, daily_partitions(settings.extract))
    assert evaluate(sensor, instance, resources).run_requests == []

    engine = create_state_engine(state_url)
    set_cursor(engine, "hubspot", "companies", DELETIONS, (datetime.now(UTC) - timedelta(hours=2)).isoformat())
    result = evaluate(sensor, instance, resources)
    assert [r.asset_selection[0].path for r in result.run_requests] == [["hubspot", "companies"]]
    assert dg.materialize(
        assets,
        selection=[dg.AssetKey(["hubspot", "companies"])],
        instance=instance,
        resources=resources,
        partition_key=result.run_requests[0].partition_key,
    ).success
    assert company in mirror_records(state_url, "companies")[1]


def test_killed_backfill_resumes_to_the_same_mirror(
    hubspot_sandbox: RunningSandbox,
    extract_defs,
    settings_file: Path,
    instance: dg.DagsterInstance,
    state_url: str,
    tmp_path: Path,
) -> None:
    """OPS-1: a bulk import killed mid-run (SIGKILL, no clean-up) and run again ends with the same mirror
    as an uninterrupted one: upserts by id, cursors only moved after the data is written."""
    settings, assets, resources = extract_defs
    with hubspot_sandbox.admin() as admin:
        # slow search calls so the kill lands between pages
        admin.put("/faults", json={"latency_ms": 1500, "path_prefix": "/crm/v3/objects/contacts/search"})
    env = {k: v for k, v in os.environ.items() if k != "HUBSPOT_ACCESS_TOKEN"}
    log = tmp_path / "killed_run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_pipelines_tests.extract.backfill_worker", str(settings_file), "hubspot/contacts"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    engine = create_state_engine(state_url)
    deadline = time.monotonic() + 120
    while mirror.counts(engine, "hubspot", "contacts")["live"] == 0:
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = mirror.counts(engine, "hubspot", "contacts")["live"]
    total = len(sandbox_records(hubspot_sandbox, "contacts"))
    assert 0 < partial < total  # really interrupted half-way

    with hubspot_sandbox.admin() as admin:
        admin.delete("/faults")
    backfill(instance, settings, assets, resources)
    records, _ = mirror_records(state_url, "contacts")
    expected = sandbox_records(hubspot_sandbox, "contacts")
    assert set(records) == set(expected)
    assert all(records[i]["email"] == p["email"] for i, p in expected.items())


def test_associations_follow_the_crm_including_removed_ones(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """DEAL-6: deal→contact associations reach the mirror with their deals; one removed in the CRM is
    flagged deleted when its deal is read again, never left live."""
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    frame = mirror.read_records(create_state_engine(state_url), "hubspot", "associations")
    deal_contacts = frame[(frame["from_type"] == "deals") & (frame["to_type"] == "contacts") & ~frame["deleted"]]
    assert len(deal_contacts) > 0
    link = deal_contacts.iloc[0]
    with hubspot_sandbox.api() as api:
        api.post(
            "/crm/v4/associations/deals/contacts/batch/archive",
            json={"inputs": [{"from": {"id": link["from_id"]}, "to": [{"id": link["to_id"]}]}]},
        ).raise_for_status()
    with hubspot_sandbox.admin() as admin:  # an edit, so the deal is read again
        admin.patch(f"/ui/deals/{link['from_id']}", json={"properties": {"description": "re-read"}}).raise_for_status()
    today = daily_partitions(settings.extract).get_last_partition_key()
    deals = [dg.AssetKey(["hubspot", "deals"])]
    assert dg.materialize(assets, selection=deals, instance=instance, resources=resources, partition_key=today).success
    after = mirror.read_records(create_state_engine(state_url), "hubspot", "associations")
    removed = after[
        (after["from_id"] == link["from_id"]) & (after["to_type"] == "contacts") & (after["to_id"] == link["to_id"])
    ]
    assert len(removed) > 0 and removed["deleted"].all()
    others = deal_contacts[deal_contacts["from_id"] != link["from_id"]]["id"]
    assert not after[after["id"].isin(others)]["deleted"].any()


def test_a_window_read_costs_the_fewest_search_calls(hubspot_sandbox: RunningSandbox, state_url: str) -> None:
    """OPS-1/OPS-7: importing a window of N contacts spends ceil(N / 200) search calls, its completeness
    count included (the search's own total), so partitioning and checking do not multiply API calls."""
    engine = create_state_engine(state_url)
    with hubspot_sandbox.admin() as admin:
        expected = admin.get("/stats").json()["contacts"]["live"]
    meter = Meter()

    async def run():
        token = PrivateAppToken(hubspot_sandbox.token)
        async with HubSpotClient("hubspot", hubspot_sandbox.base_url, token, meter=meter) as client:
            source = HubSpotObject(client, "contacts")
            return await extract(source, engine, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(1))

    result = asyncio.run(run())
    assert result.read == expected and result.upserted == expected
    assert result.crm_count == expected and result.complete
    assert meter.count(endpoint="POST /crm/v3/objects/{type}/search") == -(-expected // 200)
    assert result.associations > 0 and mirror.counts(engine, "hubspot", "contacts")["live"] == expected


def test_a_sync_runs_deletion_sweep_is_asked_while_its_pages_are_read(
    hubspot_sandbox: RunningSandbox, state_url: str
) -> None:
    """DEL-5, OPS-1: an incremental read asks for the deletions while it reads its pages instead of after
    them (a round trip less on every change's latency), and applies them after the pages: the edits and the
    deletion all reach the mirror, the deleted record marked deleted."""
    engine = create_state_engine(state_url)
    meter = Meter()

    async def read(incremental: bool):
        token = PrivateAppToken(hubspot_sandbox.token)
        async with HubSpotClient("hubspot", hubspot_sandbox.base_url, token, meter=meter) as client:
            source = HubSpotObject(client, "contacts")
            return await extract(source, engine, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(1),
                                 incremental=incremental)

    asyncio.run(read(False))  # the import: the cursors the sync runs start from
    contacts = sorted(sandbox_records(hubspot_sandbox, "contacts"))
    edited, gone = contacts[:250], contacts[-1]  # two search pages of changes
    with hubspot_sandbox.admin() as admin:
        for i, record_id in enumerate(edited):
            admin.patch(f"/ui/contacts/{record_id}", json={"properties": {"jobtitle": f"Sweep {i}"}}).raise_for_status()
        admin.delete(f"/ui/contacts/{gone}").raise_for_status()
    meter.calls.clear()
    result = asyncio.run(read(True))

    order = [c.endpoint for c in meter.calls if c.attempt == 1]  # in the order the answers came
    searches = [i for i, e in enumerate(order) if e == "POST /crm/v3/objects/{type}/search"]
    sweep = order.index("GET /crm/v3/objects/{type}")  # archived records: the list endpoint
    pages = searches[: -(-result.read // 200)]
    assert len(pages) >= 2 and sweep < pages[-1]  # answered before the read's last page
    assert result.deleted == 1 and result.read >= len(edited)
    records, deleted = mirror_records(state_url, "contacts")
    assert all(records[r]["jobtitle"] == f"Sweep {i}" for i, r in enumerate(edited))
    assert gone in deleted and gone not in records


def test_an_object_that_fails_leaves_the_others_recorded(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """OPS-1: a CRM's objects are read in one step; when one cannot be stored (here its mirror table is
    gone), the others are still imported and their partitions recorded, and the run fails naming the
    object to re-run, with the database's own error."""
    settings, assets, resources = extract_defs
    engine = create_state_engine(state_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE mirror_hubspot_contacts"))

    runs = list(bulk_import(instance, settings, assets, resources))

    partitioned = [r for r in runs if r.first is not None]
    assert partitioned and not any(r.result.success for r in partitioned)
    failure = partitioned[0].result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "hubspot: contacts not extracted; contacts: " in failure  # with the database's own error:
    assert "mirror_hubspot_contacts" in failure
    keys = set(daily_partitions(settings.extract).get_partition_keys(current_time=datetime.now(UTC)))
    recorded: dict[str, set[str]] = defaultdict(set)  # by these runs (the instance is shared)
    for run in partitioned:
        for event in run.result.get_asset_materialization_events():
            recorded[event.asset_key.path[1]].add(event.partition)
    for obj in ("companies", "deals"):  # read after the one that failed
        assert recorded[obj] == keys, obj
        assert set(mirror_records(state_url, obj)[0]) == set(sandbox_records(hubspot_sandbox, obj)), obj
    assert recorded["contacts"] == set()


def test_default_bulk_import_of_eight_years_is_one_run_per_crm() -> None:
    """OPS-1 (issue 17): with the default settings every daily partition since 2019 fits in one backfill run per
    CRM, so each object is read once over the whole history (HubSpot through both rate buckets) instead of in
    runs of 1,000 days whose small early windows go through search alone."""
    settings = Settings()
    keys = daily_partitions(settings.extract).get_partition_keys(current_time=datetime.now(UTC))
    assert keys[0] == "2019-01-01" and len(keys) > 2_000
    policies = {a.node_def.name: a.backfill_policy for a in build_extract_assets(settings) if a.partitions_def}
    assert set(policies) == {"hubspot_extract", "salesforce_extract", "dynamics_extract"}
    assert all(p is not None and p.max_partitions_per_run >= len(keys) for p in policies.values())

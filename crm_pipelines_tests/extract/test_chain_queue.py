"""Issue 14 / OPS-1: a change made while the sync chain runs waits for that run's end, not for the next tick
after it. The change sensor queues the next chain run while one runs (at most one waits), and the instance's
run queue holds it until the running one ends (dagster.yaml's ``run_queue.tag_concurrency_limits``), so two
chain runs never overlap. Real runs on the HubSpot sandbox, both state backends."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import yaml

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.run_tags import CHAIN_TAG
from crm_pipelines.defs.sync.busy import IN_PROGRESS, chain_runs, chains_wait_their_turn
from crm_pipelines.defs.sync.chain import sync_chain
from crm_pipelines.defs.sync.change_sensor import sync_requests
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import build_write_assets
from crm_pipelines.demo_instance import FALLBACK, instance_config
from crm_pipelines.settings import load_settings
from crm_pipelines.state import mirror
from crm_pipelines_tests.extract.conftest import dagster_instance
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_records
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

REPO = Path(__file__).resolve().parents[2]
CONTACTS = dg.AssetKey(["hubspot", "contacts"])
POOL = "hubspot_api"


def _chain_run(instance_ref: dg.InstanceRef, settings_path: str, request: dg.RunRequest) -> bool:
    """A requested chain run in a process of its own, as the daemon's run worker makes it."""
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    assets = [*build_extract_assets(settings), build_unified_assets(settings), build_plan_assets(),
              *build_write_assets()]  # fmt: skip
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        return dg.materialize(assets, selection=request.asset_selection, instance=instance, resources=resources,
                              partition_key=request.partition_key, tags=request.tags).success


@pytest.fixture
def queued_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The instance ``make test`` gives (the repo's dagster.yaml on PostgreSQL), or a local one with the repo's
    run queue and concurrency rules."""
    if os.environ.get("DAGSTER_PG_HOST"):
        with dagster_instance(tmp_path / "dagster_home") as inst:
            yield inst
    else:
        with dg.instance_for_test(overrides=_queue_rules(yaml.safe_load((REPO / "dagster.yaml").read_text()))) as inst:
            yield inst


def _queue_rules(config: dict) -> dict:
    return {key: config[key] for key in ("run_queue", "concurrency")}


def test_the_projects_instances_hold_a_chain_run_until_the_running_one_ends(tmp_path: Path) -> None:
    """The repo's dagster.yaml and the demo's instance hold a second chain run in the queue; an instance
    without that rule does not, and there the loop keeps to skipping its ticks while a chain runs."""
    for config in (yaml.safe_load((REPO / "dagster.yaml").read_text()), instance_config({}), FALLBACK):
        with dg.instance_for_test(overrides=_queue_rules(config)) as inst:
            assert chains_wait_their_turn(inst)
    with dg.instance_for_test() as inst:
        assert not chains_wait_their_turn(inst)


def test_issue14_a_change_made_while_the_chain_runs_queues_the_next_chain_run(
    hubspot_sandbox: RunningSandbox, extract_defs, settings_file: Path, queued_instance: dg.DagsterInstance
) -> None:
    """OPS-1: while a chain run is running (waiting for HubSpot's pool), a tick requests nothing for a change
    made before that run started (the run reads it), and requests the next chain run for a change made after;
    a second tick asks for that same run again (its run key is the same, so Dagster starts it once). The next
    run, started after the first ended, reads the second change."""
    settings, assets, resources = extract_defs
    instance = queued_instance
    chain = sync_chain(settings)
    chain_assets = [build_unified_assets(settings), build_plan_assets(), *build_write_assets()]
    today = daily_partitions(settings.extract).get_last_partition_key()

    def tick() -> list[dg.RunRequest]:
        ticked = sync_requests(settings, chain, today, instance, resources["state"], resources["crm_connections"])
        return ticked.requests

    def run(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return dg.materialize([*assets, *chain_assets], selection=request.asset_selection, instance=instance,
                              resources=resources, partition_key=request.partition_key, tags=request.tags)

    backfill(instance, settings, assets, resources)
    (after_import,) = tick()
    assert run(after_import).success and tick() == []

    first, second = list(sandbox_records(hubspot_sandbox, "contacts"))[:2]
    with hubspot_sandbox.admin() as admin:
        admin.patch(f"/ui/contacts/{first}", json={"properties": {"jobtitle": "Before the run"}}).raise_for_status()
    (change,) = tick()
    # another step holds HubSpot's pool (a bulk import's, say): the chain run starts and waits for it
    pools = instance.event_log_storage
    assert pools.claim_concurrency_slot(POOL, "holder", "holder_step").is_claimed
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        running = worker.submit(_chain_run, instance.get_ref(), str(settings_file), change)
        try:
            deadline = time.monotonic() + 120
            while chain_runs(instance).running_since is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert chain_runs(instance).running_since is not None, "the chain run never started"
            assert tick() == []  # the change before it is the running run's to read
            with hubspot_sandbox.admin() as admin:
                admin.patch(f"/ui/contacts/{second}",
                            json={"properties": {"jobtitle": "During the run"}}).raise_for_status()  # fmt: skip
            # `crm-pipelines sync` runs what it asks for itself, outside the queue: nothing while a chain runs
            assert sync_requests(settings, chain, today, instance, resources["state"], resources["crm_connections"],
                                 queued=False).requests == []  # fmt: skip
            (queued,) = tick()
            assert queued.tags[CHAIN_TAG] == "true" and CONTACTS in (queued.asset_selection or [])
            assert set(chain.selection(["hubspot"])[0]) <= set(queued.asset_selection or [])
            (again,) = tick()
            assert again.run_key == queued.run_key  # the daemon launches a run key once
            assert not running.done()
        finally:
            pools.free_concurrency_slots_for_run("holder")
        assert running.result(timeout=300)
    assert not instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, tags={CHAIN_TAG: "true"}))
    assert run(queued).success
    read = mirror.read_records(resources["state"].engine(), "hubspot", "contacts", ids=[second], columns=["jobtitle"])
    assert read["jobtitle"].tolist() == ["During the run"]

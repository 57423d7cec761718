"""Issue 14 / OPS-1: the sync loop. With the Dagster daemon and nothing else, an edit made in a sandbox's UI
reaches the other CRM by itself: the change sensor notices it and requests the extract, the automation runs
``unified``, the plans and the writes; the test launches no run. ``crm-pipelines sync`` does one pass on
demand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from crm_pipelines.cli import main
from crm_pipelines.defs.run_tags import INCREMENTAL_SYNC, KIND_TAG
from crm_pipelines.defs.sync.run_now import ON_DEMAND, TRIGGER_TAG
from crm_pipelines.settings.load import SETTINGS_ENV
from crm_pipelines.state import links as link_store
from crm_pipelines_tests.conftest import new_state_url
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.extract.test_writeback_contacts import _get, _world, _write_run
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

REPO = Path(__file__).resolve().parents[2]
ARRIVAL_S = 300  # generous for a shared CI machine; `bench sync` measures the latency itself
SENSOR_TAG = "dagster/sensor_name"


@pytest.fixture
def pg_state_url(pg_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_state_url("postgresql", tmp_path, request)


def _daemon(home: Path, settings_path: Path, log: Path) -> subprocess.Popen:
    """``dagster-daemon run`` on the instance in ``home`` and the project's code location, as deployed."""
    workspace = home / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "crm_pipelines.definitions", "working_directory": str(REPO),
        "location_name": "crm_pipelines"}}]}))  # fmt: skip
    env = {**os.environ, "DAGSTER_HOME": str(home), SETTINGS_ENV: str(settings_path)}
    return subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(daemon: subprocess.Popen) -> None:
    os.killpg(daemon.pid, signal.SIGTERM)  # the daemon and the runs and code server it started
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)


def test_issue14_a_salesforce_edit_reaches_hubspot_with_the_daemon_alone(
    tmp_path: Path, three_sandboxes: RunningSandbox, pg_state_url: str, instance: dg.DagsterInstance
) -> None:
    if not os.environ.get("DAGSTER_PG_HOST"):
        pytest.skip("the daemon needs the PostgreSQL instance `make test` provides")
    # the bulk import and a first sync, as a deployment starts; then only the daemon runs anything
    world = _world(tmp_path, three_sandboxes, pg_state_url, instance,
                   extract={"partitions_per_run": 8, "sensor_interval_s": 10,
                            "start_date": (date.today() - timedelta(days=20)).isoformat()})
    _write_run(world)
    links = link_store.load(world["engine"], kind="contact").sort_values("hubspot_id")
    pair = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].iloc[0]
    hs_id, sf_id = str(pair["hubspot_id"]), str(pair["salesforce_id"])

    home = tmp_path / "dagster_home"
    daemon = _daemon(home, tmp_path / "crm_pipelines.yaml", tmp_path / "daemon.log")
    try:
        edited_at = datetime.now(UTC)
        with _ui(three_sandboxes, "salesforce") as ui:  # CONF-2: an edit on one side only
            ui.patch(f"/Contact/{sf_id}", json={"FirstName": "Daemonic"}).raise_for_status()
        deadline = time.monotonic() + ARRIVAL_S
        seen = None
        while time.monotonic() < deadline:
            seen = _get(world["settings"], "hubspot", f"/crm/v3/objects/contacts/{hs_id}",
                        {"properties": "firstname"})["properties"].get("firstname")
            if seen == "Daemonic":
                break
            time.sleep(2)
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        assert seen == "Daemonic", (tmp_path / "daemon.log").read_text()[-3000:]
        print(f"issue 14: the edit arrived in {(datetime.now(UTC) - edited_at).total_seconds():.0f} s")
        while time.monotonic() < deadline + 120 and not _written_by_the_daemon(instance, edited_at):
            time.sleep(2)  # the run that wrote it records its materialization as it ends
    finally:
        _stop(daemon)
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(created_after=edited_at))]
    assert runs and all(SENSOR_TAG in r.tags for r in runs)  # the test launched none
    assert all(r.tags.get(KIND_TAG) == INCREMENTAL_SYNC for r in runs)
    assert _written_by_the_daemon(instance, edited_at)


def _written_by_the_daemon(instance: dg.DagsterInstance, since: datetime) -> bool:
    """Whether a run a sensor launched after ``since`` materialized ``writeback/hubspot_writes``."""
    runs = {r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(created_after=since))
            if SENSOR_TAG in r.dagster_run.tags}  # fmt: skip
    latest = instance.fetch_materializations(dg.AssetKey(["writeback", "hubspot_writes"]), limit=5,
                                             ascending=False).records  # fmt: skip
    return any(m.run_id in runs for m in latest)


def test_issue14_crm_pipelines_sync_carries_an_edit_on_demand(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14 / OPS-1 on demand: ``crm-pipelines sync``, one pass of the loop (the change sensor's tick, its
    extracts, then ``unified``, the plans and the writes), carries a HubSpot edit to Salesforce, as real runs on
    the instance in ``DAGSTER_HOME``, each tagged as an on-demand incremental sync; it says what it wrote per
    CRM."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    _write_run(world)
    links = link_store.load(world["engine"], kind="contact").sort_values("hubspot_id")
    pair = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].iloc[0]
    hs_id, sf_id = str(pair["hubspot_id"]), str(pair["salesforce_id"])
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_id}", json={"properties": {"firstname": "Ondemand"}}).raise_for_status()
    started = datetime.now(UTC)
    monkeypatch.setenv("DAGSTER_HOME", str(instance.root_directory))
    result = CliRunner().invoke(main, ["sync", "--settings", str(tmp_path / "crm_pipelines.yaml")])
    assert result.exit_code == 0, result.output
    assert _get(world["settings"], "salesforce", f"sobjects/Contact/{sf_id}")["FirstName"] == "Ondemand"
    said = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert "written: " in said["salesforce"] and " 0 updated" not in said["salesforce"]
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(created_after=started))]
    assert len(runs) >= 2  # the extract(s), then the chain
    assert all(r.tags.get(TRIGGER_TAG) == ON_DEMAND and r.tags.get(KIND_TAG) == INCREMENTAL_SYNC for r in runs)

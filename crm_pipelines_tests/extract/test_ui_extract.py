"""What the Dagster UI shows of the extract side (issue 15), read back from the instance after real runs against a
HubSpot sandbox: each partition's own figures (not the run's totals repeated on each), the mirror's whole total
on the newest partition, the completeness check's window, API usage as numbers, labelled runs, descriptions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from crm_pipelines import catalog
from crm_pipelines.defs.extract.assets import COMPLETE_CHECK, build_extract_assets
from crm_pipelines.defs.extract.backfill import ImportRun, bulk_import
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.run_tags import BULK_IMPORT, CONNECTION_TAG, KIND_TAG, MANUAL
from crm_pipelines.extract.catalog import EXTRACTED
from crm_pipelines.settings import Settings, load_settings
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

OBJECTS = ("contacts", "companies", "deals")
LIMIT = 500_000  # an API call limit, so the ledger counts (OPS-2)
DAYS = 20  # the partitions start this many days ago: 21 partitions, runs of 8


@dataclass
class Imported:
    sandbox: RunningSandbox
    instance: dg.DagsterInstance
    state_url: str
    settings: Settings
    settings_path: Path
    runs: list[ImportRun]
    calls_received: int  # what the sandbox counted during the import

    @property
    def run_ids(self) -> set[str]:
        return {r.result.run_id for r in self.runs}

    def materializations(self, obj: str, run_ids: set[str] | None = None) -> list[dg.EventLogRecord]:
        """``obj``'s materializations by the given runs (default: the import's), oldest first. The Dagster
        storage may be shared with other tests (PostgreSQL under `make test`): only these runs count."""
        wanted = run_ids or self.run_ids
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["hubspot", obj])), limit=10_000, ascending=True
        ).records
        return [r for r in records if r.run_id in wanted]


def write_settings(path: Path, sandbox: RunningSandbox, state_url: str, limit: int | None) -> Path:
    hubspot = {"api_call_limit": limit} if limit else {}
    path.write_text(yaml.safe_dump({
        "state_database_url": state_url,
        "sandbox": {"data_dir": str(sandbox.data_dir)},
        "connections": {"hubspot": hubspot, "salesforce": {"enabled": False}, "dynamics": {"enabled": False}},
        "extract": {"partitions_per_run": 8, "start_date": (date.today() - timedelta(days=DAYS)).isoformat()},
    }))  # fmt: skip
    return path


def definitions(path: Path, state_url: str) -> tuple[Settings, list[dg.AssetsDefinition], dict]:
    settings = load_settings(path)
    return settings, build_extract_assets(settings), build_resources(settings, str(path), state_url=state_url)


def calls_received(sandbox: RunningSandbox) -> int:
    with sandbox.admin() as admin:
        return admin.get("/usage").json()["total"]


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, module_state_url: str, module_instance: dg.DagsterInstance,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[Imported]:
    """The bulk import of a HubSpot sandbox (three runs of up to 8 daily partitions, then the reference objects)."""
    for name in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_REFRESH_TOKEN", "CRM_PIPELINES_STATE_DB_URL"):
        monkeypatch_module.delenv(name, raising=False)
    tmp = tmp_path_factory.mktemp("ui-extract")
    sandbox = start_sandbox(tmp / "sandbox", scale=400, seed=5)
    try:
        path = write_settings(tmp / "crm_pipelines.yaml", sandbox, module_state_url, LIMIT)
        settings, assets, resources = definitions(path, module_state_url)
        before = calls_received(sandbox)
        runs = list(bulk_import(module_instance, settings, assets, resources))
        assert all(r.result.success for r in runs), [r.failures() for r in runs]
        yield Imported(sandbox, module_instance, module_state_url, settings, path, runs,
                       calls_received(sandbox) - before)  # fmt: skip
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def value(record: dg.EventLogRecord, name: str):
    return record.asset_materialization.metadata[name].value


def filed_by_day(state_url: str, obj: str, keys: list[str]) -> Counter[str]:
    """The mirror's live records of ``obj`` per partition key, by modification day: older ones on the first."""
    frame = mirror.read_records(create_state_engine(state_url), "hubspot", obj, columns=())
    live = frame[~frame["deleted"]]
    days = live["modified_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    return Counter(min(max(day, keys[0]), keys[-1]) for day in days)


def test_each_partition_carries_its_own_records_and_they_add_up_to_the_import(imported: Imported) -> None:
    """A run over 8 days used to repeat its totals on each of its 8 partitions (an 8-fold overcount when summed):
    now each partition's ``records_read`` is the records modified that day, and the partitions add up to what
    was imported; a run's API calls are on its last partition only, and all of them add up to the calls the
    CRM received."""
    engine = create_state_engine(imported.state_url)
    api_calls = 0
    for obj in OBJECTS:
        records = imported.materializations(obj)
        keys = sorted({r.partition_key for r in records if r.partition_key})
        assert len(records) == len(keys) == DAYS + 1, obj  # one materialization per partition
        per_day = {r.partition_key: value(r, "records_read") for r in records}
        assert sum(per_day.values()) == mirror.counts(engine, "hubspot", obj)["live"], obj
        filed = filed_by_day(imported.state_url, obj, keys)
        assert per_day == {k: filed[k] for k in keys}, obj
        assert len(set(per_day.values())) > 1, obj  # not one figure repeated
        for run in imported.runs[:-1]:
            mine = [r for r in records if r.run_id == run.result.run_id]
            assert [r.partition_key for r in mine if value(r, "api_calls")] == [run.last], (obj, run.label)
            assert run.last in value(mine[0], "figures")
        api_calls += sum(value(r, "api_calls") for r in records)
    for obj in [o for o in EXTRACTED["hubspot"] if o not in OBJECTS]:
        for record in imported.materializations(obj):  # tasks' partitions, the reference objects' one each
            api_calls += value(record, "api_calls")
    assert api_calls == imported.calls_received


def test_the_newest_partition_shows_the_whole_mirror(imported: Imported) -> None:
    """The asset's overview shows its newest materialization, today's partition, which may hold no record: it
    still says how many records the mirror holds (``mirror_live_total``, and Dagster's row count)."""
    engine = create_state_engine(imported.state_url)
    today = datetime.now(UTC).date().isoformat()
    for obj in OBJECTS:
        latest = imported.instance.get_latest_materialization_event(dg.AssetKey(["hubspot", obj]))
        assert latest is not None and latest.run_id in imported.run_ids
        metadata = latest.asset_materialization.metadata
        assert latest.asset_materialization.partition == today
        live = mirror.counts(engine, "hubspot", obj)["live"]
        assert live > 0 and metadata["mirror_live_total"].value == live
        assert metadata["dagster/row_count"].value == live
    spec = next(s for a in build_extract_assets(imported.settings) for s in a.specs if s.key.path[-1] == "contacts")
    assert "newest partition" in spec.description and "mirror_live_total" in spec.description


def test_the_complete_check_names_the_window_it_compared(imported: Imported) -> None:
    """OPS-7's check says which window it counted (the last run's days), both counts, and what it compares; each
    import run evaluates it once for the window it read, and leaves nothing "planned" per daily partition."""
    last = imported.runs[-2]  # the last run of the partitioned objects
    check_key = dg.AssetCheckKey(dg.AssetKey(["hubspot", "contacts"]), COMPLETE_CHECK)
    record = imported.instance.get_latest_asset_check_evaluation_record(check_key)
    assert record is not None and record.run_id == last.result.run_id
    history = imported.instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1_000)
    for run in imported.runs[:-1]:
        statuses = [r.status for r in history if r.run_id == run.result.run_id]
        assert statuses == [AssetCheckExecutionRecordStatus.SUCCEEDED], run.label
    evaluation = record.event.dagster_event.event_specific_data
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert evaluation.passed
    assert metadata["window_start"] == datetime.fromisoformat(last.first).replace(tzinfo=UTC).isoformat()
    end = datetime.fromisoformat(last.last).replace(tzinfo=UTC) + timedelta(days=1)
    assert datetime.fromisoformat(metadata["window_end"]) <= end
    assert metadata["partitions"] == f"{last.first} … {last.last}"
    assert isinstance(metadata["crm_count"], int) and metadata["crm_count"] == metadata["mirror_count"]
    (multi,) = [a for a in build_extract_assets(imported.settings) if a.partitions_def is not None]
    description = next(s.description for s in multi.check_specs if s.asset_key.path[-1] == "contacts")
    assert "window_start" in description and "search total" in description


def test_api_usage_is_a_number_on_every_materialization(imported: Imported, tmp_path: Path) -> None:
    """OPS-2: the calls of the last 24 h and the limit are numbers on every extract materialization (the UI plots
    them); without a limit no number pretends to count, a text says none is set, and the run's calls still show."""
    for obj in (*OBJECTS, "owners"):
        for record in imported.materializations(obj):
            metadata = record.asset_materialization.metadata
            assert isinstance(metadata["api_calls_used_24h"], dg.IntMetadataValue), obj
            assert metadata["api_calls_used_24h"].value > 0
            assert metadata["api_calls_budget_24h"].value == LIMIT
            assert isinstance(metadata["api_calls"], dg.IntMetadataValue)

    path = write_settings(tmp_path / "no_limit.yaml", imported.sandbox, imported.state_url, None)
    _, assets, resources = definitions(path, imported.state_url)
    today = datetime.now(UTC).date().isoformat()
    run = dg.materialize(assets, selection=[dg.AssetKey(["hubspot", "contacts"])], partition_key=today,
                         instance=imported.instance, resources=resources)  # fmt: skip
    assert run.success
    (record,) = imported.materializations("contacts", {run.run_id})
    metadata = record.asset_materialization.metadata
    assert "api_calls_used_24h" not in metadata
    assert metadata["api_call_limit_24h"].value.startswith("none set")
    assert metadata["api_calls"].value > 0  # today's partition alone: the run's one partition, its own calls


def test_runs_launched_by_hand_are_labelled(imported: Imported) -> None:
    """The UI launches extract runs with no tags of ours; the step labels its run: a backfill's run as the bulk
    import, a single partition by hand as manual, with the connection it reads. Our own runs keep their tags."""
    _, assets, resources = definitions(imported.settings_path, imported.state_url)
    keys = [dg.AssetKey(["hubspot", "deals"])]
    day = (date.today() - timedelta(days=3)).isoformat()
    by_hand = dg.materialize(assets, selection=keys, partition_key=day, instance=imported.instance,
                             resources=resources)  # fmt: skip
    backfill_run = dg.materialize(
        assets, selection=keys, instance=imported.instance, resources=resources,
        tags={"dagster/backfill": "abcdefgh", "dagster/asset_partition_range_start": day,
              "dagster/asset_partition_range_end": date.today().isoformat()},
    )  # fmt: skip
    assert by_hand.success and backfill_run.success
    tags = {run: imported.instance.get_run_by_id(run).tags for run in (by_hand.run_id, backfill_run.run_id)}
    assert tags[by_hand.run_id][KIND_TAG] == MANUAL and tags[by_hand.run_id][CONNECTION_TAG] == "hubspot"
    assert tags[backfill_run.run_id][KIND_TAG] == BULK_IMPORT
    assert tags[backfill_run.run_id][CONNECTION_TAG] == "hubspot"
    for run in imported.runs:  # launched by our code with its tags: unchanged
        assert imported.instance.get_run_by_id(run.result.run_id).tags[KIND_TAG] == BULK_IMPORT


def test_every_extract_asset_and_check_says_what_it_is(tmp_path: Path) -> None:
    """The asset graph of all three CRMs: every extract asset and check has a description naming its API, its
    partitions (where partitioned) and the rules it serves with where they are explained; kinds and tags show the
    CRM; no placeholder owners."""
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump({"state_database_url": f"sqlite:///{tmp_path / 's.db'}"}))
    assets = build_extract_assets(load_settings(path))
    seen = set()
    for asset in assets:
        for spec in asset.specs:
            crm, obj = spec.key.path
            seen.add((crm, obj))
            assert spec.group_name == crm and crm in spec.kinds, spec.key
            assert spec.tags["crm_pipelines/connection"] == crm
            assert not spec.owners
            text = spec.description or ""
            assert catalog.get(crm, obj).mirror_table in text and "docs/RULES.md" in text, spec.key
            assert ("OPS-7" in text) == catalog.get(crm, obj).partitioned, spec.key
            if catalog.get(crm, obj).partitioned:
                assert "one per day" in text and "API" in text, spec.key
        for check in asset.check_specs:
            assert "OPS-7" in (check.description or "") and "window" in (check.description or "")
    assert seen == {(o.crm, o.name) for o in catalog.objects(extracted=True)}

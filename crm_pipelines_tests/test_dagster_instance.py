"""Dagster deployment plumbing: the repo's `dagster.yaml` on PostgreSQL, and the definitions entry point."""

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

PROBE_ASSET_KEY = dg.AssetKey("dagster_instance_probe")


@dg.asset(key=PROBE_ASSET_KEY)
def dagster_instance_probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"records": 1})


@pytest.mark.postgres
def test_dagster_yaml_records_runs_and_events_in_postgres(
    dagster_pg_instance: dg.DagsterInstance, pg_url: str
) -> None:
    """`dagster.yaml`: run, event-log and schedule storage are PostgreSQL (dagster-postgres), configured
    from the DAGSTER_PG_* environment; a real run is recorded in the `runs` table and its
    materialization in the event log."""
    instance = dagster_pg_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)

    result = dg.materialize([dagster_instance_probe], instance=instance)
    assert result.success
    run_id = result.run_id

    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id]))
    assert [r.dagster_run.run_id for r in records] == [run_id]
    assert records[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS

    materializations = instance.fetch_materializations(PROBE_ASSET_KEY, limit=100)
    assert run_id in {r.run_id for r in materializations.records}

    # The same facts, read straight from PostgreSQL rather than through Dagster.
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :run_id"), {"run_id": run_id}
            ).scalar_one()
            materialization_rows = conn.execute(
                sa.text(
                    "SELECT count(*) FROM event_logs"
                    " WHERE run_id = :run_id AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                ),
                {"run_id": run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert materialization_rows == 1


def test_definitions_entry_point_loads() -> None:
    """`crm_pipelines/definitions.py`: the single entry point loads the `defs/` folder into a
    `Definitions` object without error (and without a database or network)."""
    from crm_pipelines.definitions import defs

    loaded = defs()
    assert isinstance(loaded, dg.Definitions)
    dg.Definitions.validate_loadable(loaded)


def test_issue14_the_sync_loop_is_on_when_deployed() -> None:
    """Issue 14 / OPS-1: deployed, the change sensor (which runs the chain after a change: ``unified``, the plans,
    the writes), the sweep schedule and the automation of the sweep's checks run without anyone starting them;
    ``sync_job`` runs the whole chain on demand, every connection's extracts included."""
    from crm_pipelines.definitions import defs
    from crm_pipelines.defs.run_tags import CHAIN_TAG, INCREMENTAL_SYNC, KIND_TAG
    from crm_pipelines.defs.sync.change_sensor import CHANGE_SENSOR
    from crm_pipelines.defs.sync.definitions import SYNC_AUTOMATION
    from crm_pipelines.defs.sync.sweep_schedule import SWEEP_SCHEDULE
    from crm_pipelines.defs.sync.sync_job import SYNC_JOB

    loaded = defs()
    sensors = {s.name: s for s in loaded.sensors}
    assert sensors[CHANGE_SENSOR].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors[SYNC_AUTOMATION].default_status == dg.DefaultSensorStatus.RUNNING
    schedules = {s.name: s for s in loaded.schedules}
    assert schedules[SWEEP_SCHEDULE].default_status == dg.DefaultScheduleStatus.RUNNING
    graph = loaded.resolve_asset_graph()
    chain = {k for k in graph.get_all_asset_keys() if k.path[0] in ("unified", "writeback")}
    assert {k.path[-1] for k in chain} >= {"hubspot_plan", "hubspot_writes", "salesforce_writes", "dynamics_writes"}
    assert chain <= sensors[CHANGE_SENSOR].asset_selection.resolve(graph)
    job = loaded.resolve_job_def(SYNC_JOB)
    in_job = set(job.asset_layer.selected_asset_keys)
    assert chain <= in_job and dg.AssetKey(["salesforce", "Contact"]) in in_job and job.partitions_def is not None
    assert job.tags[KIND_TAG] == INCREMENTAL_SYNC and job.tags[CHAIN_TAG] == "true"

"""Issue 14 (OPS-1 latency): a sync loop run (in-process, ``defs/sync/change_sensor.IN_PROCESS``) keeps one
connection to Dagster's PostgreSQL storage for its events, instead of dagster-postgres' default of opening a
connection per event; a run without that config (a backfill's) keeps Dagster's default."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from crm_pipelines.defs.sync.change_sensor import IN_PROCESS
from crm_pipelines.executors import step_executor
from crm_pipelines_tests.extract.conftest import dagster_instance

STEPS = 8


def _steps() -> list[dg.AssetsDefinition]:
    def step(i: int) -> dg.AssetsDefinition:
        @dg.asset(name=f"step_{i}", deps=[f"step_{i - 1}"] if i else [])
        def _step(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            for line in range(3):
                context.log.info(f"line {line}")
            return dg.MaterializeResult(metadata={"line_count": 3})

        return _step

    return [step(i) for i in range(STEPS)]


@pytest.fixture
def pg_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dagster_instance(tmp_path / "dagster_home") as instance:
        if not hasattr(instance.event_log_storage, "postgres_url"):
            pytest.skip("needs the PostgreSQL instance `make test` provides")
        yield instance


def _sessions(url: str) -> int:
    """Sessions ever opened on the storage's database (PostgreSQL counts them when each one ends)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            return int(conn.execute(sa.text(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()")).scalar_one())  # fmt: skip
    finally:
        engine.dispose()


def held_job() -> dg.JobDefinition:
    """The steps under the project's executor (the sync loop's runs choose in-process through run config)."""
    job = dg.define_asset_job("steps", executor_def=step_executor("multiprocess"))
    return dg.Definitions(assets=_steps(), jobs=[job]).resolve_job_def("steps")


def default_job() -> dg.JobDefinition:
    """The same steps under Dagster's own in-process executor."""
    job = dg.define_asset_job("steps", executor_def=dg.in_process_executor)
    return dg.Definitions(assets=_steps(), jobs=[job]).resolve_job_def("steps")


def _opened(instance: dg.DagsterInstance, job: object, run_config: dict) -> int:
    url = instance.event_log_storage.postgres_url  # type: ignore[attr-defined]
    before = _sessions(url)
    with dg.execute_job(dg.reconstructable(job), instance, run_config=run_config) as result:  # type: ignore[arg-type]
        assert result.success
    return _sessions(url) - before - 1  # less the count's own session


@pytest.mark.postgres
def test_a_sync_loop_run_keeps_one_storage_connection_for_its_events(pg_instance: dg.DagsterInstance) -> None:
    """An in-process run of eight steps (each logging three lines) under the project's executor opens a handful
    of connections to Dagster's storage, not one per event: under Dagster's in-process executor, the same run
    opens over a hundred."""
    default = _opened(pg_instance, default_job, {})
    with dg.DagsterInstance.from_ref(pg_instance.get_ref()) as fresh:  # the hold lasts for its process's instance
        held = _opened(fresh, held_job, IN_PROCESS)
    print(f"storage connections opened: {default} under Dagster's in-process executor, {held} held")
    assert held * 3 < default, (held, default)

"""The state database's schema migrations (issue 6): every process that opens the state database migrates
it, so processes that start together (the bulk import's runs of OPS-1, one per CRM, and a sensor) must all
get a working schema, on both backends."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.backfill import bulk_import
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.settings import load_settings
from crm_pipelines.state import mirror, schema
from crm_pipelines.state.db import create_state_engine, engine_for_url
from crm_pipelines.state.migrations import STEPS, current_version, migrate
from crm_pipelines.state.schema import schema_version
from crm_pipelines_tests.sandbox.conftest import start_sandbox

PROCESSES = 8


def _open_at(url: str, start_at: float) -> str:
    time.sleep(max(start_at - time.time(), 0))  # all open the database in the same instant
    try:
        create_state_engine(url).dispose()
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"
    return "ok"


def test_processes_starting_together_all_migrate_a_fresh_database(state_url: str) -> None:
    start_at = time.time() + 4  # after every spawned process has imported the project
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_open_at, [state_url] * PROCESSES, [start_at] * PROCESSES))
    assert outcomes == ["ok"] * PROCESSES
    engine = create_state_engine(state_url)
    with engine.connect() as conn:  # each step applied exactly once
        versions = [r[0] for r in conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version))]
    engine.dispose()
    assert versions == [version for version, _ in STEPS]


def test_a_migrated_database_has_every_declared_table_column_and_index(state_url: str) -> None:
    """The frozen steps of ``migrations.py`` and the declarations the code uses (``schema.py``) agree: a new
    object or column in the catalog without its migration step fails here."""
    engine = create_state_engine(state_url)
    inspector = sa.inspect(engine)
    for table in schema.metadata.sorted_tables:
        assert inspector.has_table(table.name), f"{table.name}: declared in schema.py, no migration creates it"
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name
    engine.dispose()


def test_a_database_at_the_previous_version_upgrades_in_place_then_extracts_tasks(
    tmp_path: Path, state_url: str
) -> None:
    """Frozen migrations (issue 11): a database left at version 2 (before tasks, OPS-4) keeps its mirror
    rows when opened by today's code, gains the HubSpot tasks and Salesforce Task mirrors, and the extract
    assets then fill them with exactly the CRMs' tasks."""
    old = engine_for_url(state_url)
    assert migrate(old, to_version=2) == 2
    kept = {"id": "901", "record": {"properties": {"email": "kept@example.com"}}, "extracted_at": datetime.now(UTC)}
    old_contacts = sa.Table("mirror_hubspot_contacts", sa.MetaData(), autoload_with=old)
    with old.begin() as conn:
        conn.execute(old_contacts.insert().values(**kept, deleted=False))
    # results as the unified asset stored them before they were declared (pandas ``to_sql``, replaced each run)
    with old.begin() as conn:
        pd.DataFrame({"identity_id": ["email:kept@example.com"], "hubspot_id": ["901"]}).to_sql(
            "unified_contact_identities", conn, index=False)
    assert not sa.inspect(old).has_table("mirror_hubspot_tasks")
    old.dispose()

    sandbox = start_sandbox(tmp_path / "sandbox", "--only", "salesforce", "--salesforce-port", "0", scale=100, seed=3)
    try:
        with sandbox.api() as api:  # two tasks made in HubSpot, beside the seed's (issue 16: OPS-4 engagements)
            for subject in ("Call back", "Send the contract"):
                created = api.post(
                    "/crm/v3/objects/tasks",
                    json={"properties": {"hs_task_subject": subject, "hs_timestamp": "2026-01-05T10:00:00Z"}},
                )
                assert created.status_code == 201, created.text
        with httpx.Client(base_url=f"{sandbox.info['salesforce']['base_url']}/__sandbox__",
                          verify=sandbox.verify) as admin:
            sf_tasks = admin.get("/stats").json()["Task"]["live"]
        assert sf_tasks > 0
        with sandbox.admin() as admin:
            hs_tasks = admin.get("/stats").json()["tasks"]["live"]

        settings_path = tmp_path / "crm_pipelines.yaml"
        settings_path.write_text(yaml.safe_dump({
            "state_database_url": state_url,
            "sandbox": {"data_dir": str(sandbox.data_dir)},
            "connections": {"dynamics": {"enabled": False}},
            "extract": {"partitions_per_run": 40, "start_date": (date.today() - timedelta(days=30)).isoformat()},
        }))
        settings = load_settings(settings_path)
        resources = build_resources(settings, str(settings_path), state_url=state_url)
        tasks = [dg.AssetKey(["hubspot", "tasks"]), dg.AssetKey(["salesforce", "Task"])]
        with dg.instance_for_test() as instance:
            for run in bulk_import(instance, settings, build_extract_assets(settings), resources, tasks):
                assert run.result.success, run.failures()
    finally:
        sandbox.stop()

    engine = create_state_engine(state_url)
    with engine.connect() as conn:
        assert current_version(conn) == STEPS[-1][0]
    contacts = mirror.read_records(engine, "hubspot", "contacts")
    assert contacts["id"].tolist() == ["901"] and contacts["email"].tolist() == ["kept@example.com"]
    # the undeclared result table became the declared one (derived data: the next unified run fills it)
    declared = {c["name"] for c in sa.inspect(engine).get_columns("unified_contact_identities")}
    assert declared == {c.name for c in schema.UNIFIED_TABLES["contact_identities"].columns}
    hubspot_tasks = mirror.read_records(engine, "hubspot", "tasks")
    assert {"Call back", "Send the contract"} <= set(hubspot_tasks["hs_task_subject"])
    assert mirror.counts(engine, "hubspot", "tasks")["live"] == hs_tasks
    assert mirror.counts(engine, "salesforce", "Task")["live"] == sf_tasks
    engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_database_urls_are_taken_as_users_write_them(pg_url: str, scheme: str) -> None:
    """Issue 11: a plain ``postgresql://`` (or ``postgres://``) URL works for the state database and for a
    bench's ``--database-url`` (its own new database next to it), through one URL-to-engine function."""
    from crm_pipelines.bench.extract import _fresh_database

    plain = f"{scheme}://{pg_url.split('://', 1)[1]}"
    engine = create_state_engine(plain)
    with engine.connect() as conn:
        assert current_version(conn) == STEPS[-1][0]
    engine.dispose()
    with _fresh_database(plain) as url:
        fresh = create_state_engine(url)
        assert sa.inspect(fresh).has_table("links")
        fresh.dispose()

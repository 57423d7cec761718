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


def test_sync_path_reads_of_few_rows_use_partial_indexes_after_the_upgrade(state_url: str) -> None:
    """Invariant 6, DEL-4, DEAL-5: a database from before migration 14 upgrades in place, keeps its links,
    their history and the linked deals, and the three reads every sync run makes of a few rows among many (the
    links the sync wrote through, the link changes a deletion made, the deals linked across CRMs) then plan on
    the partial index holding just those rows instead of scanning the table (at a million people 136 ms, 80 ms
    and 33 ms a read on a loaded server, against under 0.1 ms)."""
    from crm_pipelines.defs.unified.stored_result import StoredResult
    from crm_pipelines.state import links, unified

    engine = engine_for_url(state_url)
    assert migrate(engine, to_version=13) == 13
    at = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(schema.links.insert(), [
            {"kind": "contact", "hubspot_id": f"h{i}", "identity_id": f"c{i}", "salesforce_id": f"s{i}",
             "origin": "sync" if i == 2 else "match", "created_at": at, "updated_at": at} for i in range(4)])
        conn.execute(schema.link_history.insert(), [
            {"at": at, "kind": "contact", "hubspot_id": "h1", "change": "created", "before": None,
             "after": {"salesforce_id": "s1"}, "reason": "new match by email"},
            {"at": at, "kind": "contact", "hubspot_id": "h9", "change": "removed", "before": {"salesforce_id": "s9"},
             "after": None, "reason": "deleted in hubspot"}])
        conn.execute(sa.text("INSERT INTO unified_deal_identities (identity_id, hubspot_id, salesforce_id, linked) "
                             "VALUES ('d1', 'hd1', 'sd1', :yes), ('d2', 'hd2', NULL, :no)"), {"yes": True, "no": False})
    assert migrate(engine) == STEPS[-1][0] >= 14

    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    synced = links.load(engine, origin="sync")
    deletions = links.deletions(engine, "contact")
    stored = StoredResult(engine)
    sa.event.remove(engine, "before_cursor_execute", capture)
    assert synced["hubspot_id"].tolist() == ["h2"] and synced["salesforce_id"].tolist() == ["s2"]
    assert deletions[["hubspot_id", "other_id", "deleted_crm"]].values.tolist() == [["h9", "s9", "hubspot"]]
    assert stored.frames["deal_identities"]["identity_id"].tolist() == ["d1"]

    # the stored result reads by COPY on PostgreSQL, past the driver's cursor: its condition, as it states it
    linked = unified.column("deal_identities", "linked").is_(True)
    sent.append((f"SELECT identity_id FROM unified_deal_identities WHERE {linked.compile(engine)}", {}))
    pg = engine.dialect.name == "postgresql"
    wanted = {"ix_links_sync": "links.origin", "ix_link_history_deleted": "link_history.reason",
              "ix_unified_deal_identities_linked": "unified_deal_identities.linked IS"}
    with engine.connect() as conn:
        if pg:  # a test's tables are small enough to scan: ask which index the planner would take
            conn.exec_driver_sql("SET enable_seqscan = off")
        for index, condition in wanted.items():
            statement, params = next((s, p) for s, p in sent if condition in s)
            plan = conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement, params).all()
            assert index in " ".join(str(v) for row in plan for v in row), (index, statement, plan)
    engine.dispose()

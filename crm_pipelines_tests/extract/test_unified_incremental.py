"""Incremental ``unified`` (issue 11) through real Dagster runs on the three sandboxes, both state backends:
after edits, creates, deletions, a merge and a Lead conversion made in the sandboxes' UIs and brought in by
the change sensor's runs, the incremental update writes only what changed and leaves every result table
and link exactly as a full recompute does; the link history says why a link changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import sqlalchemy as sa

from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.run_tags import CHAIN_TAG, INCREMENTAL_SYNC, KIND_TAG, PRIORITY_TAG, SWEEP, SYNC_PRIORITY
from crm_pipelines.defs.sync.chain import sync_chain
from crm_pipelines.defs.sync.change_sensor import sync_requests
from crm_pipelines.defs.sync.sweep_schedule import build_sweep_schedule
from crm_pipelines.defs.unified.assets import CONTACTS, TABLES_OF, build_unified_assets, build_unified_checks
from crm_pipelines.defs.unified.mirrors import transform_settings
from crm_pipelines.defs.unified.sample_check import INCREMENTAL_EQUALS_FULL
from crm_pipelines.defs.unified.stored_result import StoredResult
from crm_pipelines.defs.unified.update import REFERENCE
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import build_write_assets
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, unified
from crm_pipelines.state.schema import MIRROR_TABLES
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_records
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def _ui(sandbox: RunningSandbox, crm: str) -> httpx.Client:
    return httpx.Client(base_url=f"{sandbox.info[crm]['base_url']}/__sandbox__/ui", verify=sandbox.verify, timeout=30)


def _snapshot(engine) -> dict[str, list[bytes]]:
    return {d.name: sorted(unified.fingerprint_rows(d.name, unified.read(engine, d.name))) for d in unified.TABLES}


def _links(engine) -> list[tuple]:
    frame = link_store.load(engine)
    return sorted(tuple(None if v is None else str(v) for v in row) for row in frame.itertuples(index=False))


def _members(engine, crm: str, type_: str) -> list[dict]:
    """In a stable order: rows come back in the order they were stored, which follows the extract's pages,
    and a record's reach (its deals and companies) sets how many stored rows the incremental run reads."""
    m = unified.read(engine, "contact_members")
    m = m[(m["crm"] == crm) & (m["type"] == type_)]
    return m.sort_values(["email", "id"], na_position="last").to_dict("records")


def test_incremental_unified_after_ui_edits_equals_a_full_recompute(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    runs = three_sandbox_runs(run_unified=False)
    sandbox, settings, instance, resources, unified_assets = (runs.sandbox, runs.settings, runs.instance,
                                                              runs.resources, runs.unified)
    first = runs.unify()
    engine = runs.engine
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "full"
    if engine.dialect.name == "postgresql":
        # Invariant 6: the incremental runs look rows up by key in what the full update wrote; without planner
        # statistics (autovacuum gathers them a minute or more later) those lookups scanned whole tables
        with engine.connect() as conn:
            analyzed = set(conn.execute(sa.text("SELECT relname FROM pg_stat_user_tables "
                                                "WHERE last_analyze IS NOT NULL")).scalars())
        assert {"unified_contact_members", "unified_company_pair_src", "links", "link_history"} <= analyzed
    total_rows = sum(len(unified.read(engine, d.name)) for d in unified.TABLES)

    # -- a person's edits in the three CRMs ------------------------------------------------------------------
    identities = unified.read(engine, "contact_identities")
    alone = identities[identities["hubspot_id"].isna() & identities["email"].notna()]
    matched = identities[identities["hubspot_id"].notna() & (identities["salesforce_type"] == "Contact")]
    sf_alone = alone[alone["salesforce_type"] == "Contact"].iloc[0]  # a Salesforce Contact HubSpot lacks
    lead = next(m for m in _members(engine, "salesforce", "Lead")
                if m["email_valid"] and not m["converted_contact_id"]
                and m["identity_id"] in set(alone["identity_id"]))  # fmt: skip
    merged = matched.iloc[0]  # its Salesforce Contact is merged away
    with_deals = set(unified.read(engine, "contact_rollups")["contact_id"]) - {merged["hubspot_id"]}
    doomed = sorted(with_deals)[0]  # a HubSpot contact with deals, deleted
    taken = {merged["hubspot_id"], doomed}
    free = [m for m in _members(engine, "hubspot", "contact") if m["id"] not in taken]
    with _ui(sandbox, "hubspot") as ui:
        # an existing HubSpot contact takes the Salesforce Contact's email: a new match
        ui.patch(f"/contacts/{free[0]['id']}", json={"properties": {"email": sf_alone["email"]}}).raise_for_status()
        # a new HubSpot contact with the Lead's email; the Lead is converted below
        made = ui.post("/contacts", json={"properties": {"email": lead["email"], "firstname": "Conv"}})
        made.raise_for_status()
        hubspot_of_lead = str(made.json()["id"])
        ui.delete(f"/contacts/{doomed}").raise_for_status()
    with _ui(sandbox, "salesforce") as ui:
        # CON-4: the Lead converted into a new Contact that carries no email
        contact = ui.post("/Contact", json={"LastName": "Converted", "FirstName": "Lead"})
        contact.raise_for_status()
        contact_id = contact.json()["Id"]
        ui.post(f"/Lead/{lead['id']}/convert", json={"contactId": contact_id}).raise_for_status()
        # a merge: the losing duplicate is deleted (its data already moved to the winner)
        ui.delete(f"/Contact/{merged['salesforce_id']}").raise_for_status()
    with _ui(sandbox, "dynamics") as ui:
        dyn = _members(engine, "dynamics", "contact")[0]
        ui.patch(f"/contacts/{dyn['id']}", json={"emailaddress1": free[1]["email"]}).raise_for_status()

    # -- the change sensor's runs bring them in; unified follows -------------------------------------------
    assert runs.sync_changes()
    incremental = dg.materialize([unified_assets], instance=instance, resources=resources)
    assert incremental.success
    meta = incremental.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "incremental"
    assert 0 < meta["rows_written"].value < total_rows / 4  # what the edits touch, not the tables
    # Invariant 6: it read of the stored result only what the edits reach, not the tables
    assert 0 < meta["stored_rows_read"].value < total_rows / 4, meta["stored_rows_read"].value
    assert INCREMENTAL_EQUALS_FULL not in {e.check_name for e in incremental.get_asset_check_evaluations()}
    sweep = build_unified_checks()
    swept = dg.materialize([unified_assets, *sweep], instance=instance, resources=resources,
                           selection=dg.AssetSelection.checks(*sweep))  # the hourly sweep's run
    sample = {e.check_name: e for e in swept.get_asset_check_evaluations()}[INCREMENTAL_EQUALS_FULL]
    assert sample.passed and sample.metadata["records"].value > 0, sample.metadata

    # CON-4: the converted Lead's HubSpot contact and the Contact it became are one identity, linked
    identities = unified.read(engine, "contact_identities")
    row = identities[identities["hubspot_id"] == hubspot_of_lead].iloc[0]
    assert (row["salesforce_id"], row["salesforce_type"]) == (contact_id, "Contact")
    assert not (identities["hubspot_id"] == doomed).any()
    assert doomed not in set(unified.read(engine, "contact_rollups")["contact_id"])  # live contacts only
    # the link history says why each link changed
    made_link = link_store.history(engine, "contact", free[0]["id"])
    assert made_link[-1]["after"]["salesforce_id"] == sf_alone["salesforce_id"]
    assert f"new match by email {sf_alone['email']}" in made_link[-1]["reason"], made_link
    lost = link_store.history(engine, "contact", merged["hubspot_id"])
    assert "deleted or merged" in lost[-1]["reason"], lost

    after_incremental, links_after = _snapshot(engine), _links(engine)
    full = dg.materialize([unified_assets], instance=instance, resources=resources,
                          run_config={"ops": {"unified_transform": {"config": {"full": True}}}})
    assert full.success
    written = {k: v.value for e in full.get_asset_materialization_events()
               for k, v in e.materialization.metadata.items() if k.startswith("written_") and v.value}  # fmt: skip
    meta = full.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "full" and not written, written
    assert meta["links_changed"].value == 0
    assert _snapshot(engine) == after_incremental
    assert _links(engine) == links_after

    # every column the incremental run reads stored rows by is indexed (else each lookup scans a table)
    stored = StoredResult(engine)
    delta = Mirrors({(crm, obj): mirror.read_records(engine, crm, obj).head(20) for crm, obj in MIRROR_TABLES
                     if (crm, obj) not in REFERENCE})
    stored.changes(delta, link_store.load(engine, origin="sync"), transform_settings(settings))
    inspector = sa.inspect(engine)
    leading = {(d.name, col) for d in unified.TABLES for col in (d.primary_key or ())[:1]}
    leading |= {(t.removeprefix(unified.PREFIX), ix["column_names"][0]) for t in inspector.get_table_names()
                if t.startswith(unified.PREFIX) for ix in inspector.get_indexes(t)}
    assert len(stored.reads.looked_up) > 10
    assert stored.reads.looked_up <= leading, stored.reads.looked_up - leading


def test_every_declared_table_is_shown_by_an_asset() -> None:
    """Each declared result table reports its written rows on one of the ``unified`` assets."""
    assert {t for tables in TABLES_OF.values() for t in tables} == {d.name for d in unified.TABLES}


def test_the_change_sensor_runs_the_chain_in_the_run_of_the_change_and_after_an_import(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance
) -> None:
    """Issue 11 / issue 14 / OPS-1: nothing needs a person between a change and the writes. The change sensor
    requests, in one run, the extract of what changed followed by ``unified``, the plans and the writes; after an
    import that ran outside the loop it requests the chain alone; once done, nothing until the next change. The
    checks that read whole tables (incremental = full on a sample, ROLL-1 drift) never ride along: the hourly
    sweep requests them."""
    settings, assets, resources = extract_defs
    unified_assets, sweep_checks = build_unified_assets(settings), build_unified_checks()
    plans, writes = build_plan_assets(), build_write_assets()
    chain_assets = [unified_assets, plans, *writes]
    chain = sync_chain(settings)
    sweep_keys = {k for c in sweep_checks for k in c.check_keys}
    today = daily_partitions(settings.extract).get_last_partition_key()

    def tick() -> tuple[list[dg.RunRequest], list[str]]:
        done = sync_requests(settings, chain, today, instance, resources["state"], resources["crm_connections"])
        return done.requests, done.said

    def run(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return dg.materialize([*assets, *chain_assets], selection=request.asset_selection, instance=instance,
                              resources=resources, partition_key=request.partition_key, tags=request.tags)

    requests, said = tick()
    assert requests == [] and any("not imported yet" in line for line in said)
    partitions = daily_partitions(settings.extract)
    sweep = build_sweep_schedule(partitions, settings)

    def swept() -> dg.RunRequest | dg.SkipReason:
        with dg.build_schedule_context(instance=instance, resources=resources) as context:
            return sweep(context)

    # the hourly sweep (sync_job: every extract, then the chain with all writes) waits for the import: creates
    # into a CRM whose mirror is incomplete would duplicate its records
    waits = swept()
    assert isinstance(waits, dg.SkipReason) and "not imported yet: hubspot" in (waits.skip_message or "")
    backfill(instance, settings, assets, resources)
    sweep_run = swept()
    assert isinstance(sweep_run, dg.RunRequest)
    assert sweep_run.tags[KIND_TAG] == SWEEP and sweep_run.partition_key == today

    (after_import,), _ = tick()  # the import ran outside the loop: the chain alone, writes to HubSpot included
    assert set(after_import.asset_selection) == set(chain.selection(["hubspot"])[0])
    assert after_import.partition_key is None and not set(after_import.asset_check_keys or []) & sweep_keys
    assert after_import.tags[CHAIN_TAG] == "true" and after_import.tags[KIND_TAG] == INCREMENTAL_SYNC
    assert run(after_import).success
    assert tick()[0] == []

    contact = next(iter(sandbox_records(hubspot_sandbox, "contacts")))
    with hubspot_sandbox.admin() as admin:
        admin.patch(f"/ui/contacts/{contact}", json={"properties": {"jobtitle": "Chain of one"}}).raise_for_status()
    (change,), _ = tick()  # one run: the extract of what changed, then the chain
    contacts = dg.AssetKey(["hubspot", "contacts"])
    assert set(change.asset_selection) == {contacts, *chain.selection(["hubspot"])[0]}
    assert change.partition_key == today and not set(change.asset_check_keys or []) & sweep_keys
    assert change.tags[PRIORITY_TAG] == SYNC_PRIORITY  # ahead of a bulk import's steps for the same connection
    done = run(change)
    assert done.success
    assert {e.asset_key for e in done.get_asset_materialization_events()} >= {contacts, CONTACTS}
    assert tick()[0] == []

    # the hourly sweep requests the whole-table checks (crm_sync_automation evaluates them)
    defs = dg.Definitions(assets=[*assets, *chain_assets], asset_checks=sweep_checks, resources=resources)
    next_hour = datetime.now(UTC).replace(minute=1, second=0, microsecond=0) + timedelta(hours=1)
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    swept = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor, evaluation_time=next_hour)
    assert {r.key for r in swept.results if r.true_subset.size} == sweep_keys

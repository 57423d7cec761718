"""The stored, incremental plan (issue 12, OPS-5/OPS-8) through real Dagster runs on the three sandboxes, both
state backends: after edits, creates and deletions made in the sandboxes' UIs, brought in by the change
sensor's extract runs and an incremental ``unified``, the plan replans only the identities they reach, and
the stored plan equals a full plan table for table (and the plan computed whole from the state database);
a state database at the previous schema version upgrades to the plan store."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback import plans as plans_module
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.defs.writeback.stored_plan import stored_parts, stored_plans
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, plan_store, unified
from crm_pipelines.state.db import create_state_engine, engine_for_url
from crm_pipelines.state.migrations import STEPS, current_version, migrate
from crm_pipelines_tests.extract.test_extract import backfill, evaluate, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

STAGES = {"Prospecting": "appointmentscheduled", "Closed Won": "closedwon", "Closed Lost": "closedlost"}


def _settings(path: Path, state_url: str, sandbox: RunningSandbox, record_type: str | None) -> None:
    deals: dict = {"closed_won_sets_customer": True}
    if record_type:
        deals["pipelines"] = [{"other_pipeline": record_type, "hubspot_pipeline": "default", "stages": STAGES}]
    path.write_text(yaml.safe_dump({
        "state_database_url": state_url,
        "sandbox": {"data_dir": str(sandbox.data_dir)},
        "extract": {"partitions_per_run": 8, "start_date": (date.today() - timedelta(days=20)).isoformat()},
        "sync": {"salesforce": {"deals": deals}},
    }))  # fmt: skip


def _stored(engine) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """The stored plan: (target, part) -> its rows' (scope, content hash), sorted."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(plan_store.plan_rows.c.target_crm, plan_store.plan_rows.c.part,
                                      plan_store.plan_rows.c.scope, plan_store.plan_rows.c.row_hash)).all()
    out: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for target, part, scope, row_hash in rows:
        out.setdefault((target, part), []).append((scope, int(row_hash)))
    return {k: sorted(v) for k, v in out.items()}


def _summary(engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(plan_store.plan_summary)))


def _content(plans) -> dict[tuple[str, str], list[int]]:
    """A plan's rows as content hashes (as the store hashes them), per (target, part), sorted."""
    out = {}
    for target, plan in plans.items():
        for part in stored_parts():
            frame = getattr(plan, part)
            if len(frame):
                out[(target, part)] = sorted(plan_store.encode(frame)["row_hash"].tolist())
    return out


def _meta(result: dg.ExecuteInPlanResult | dg.ExecuteJobResult) -> dict:
    return {e.materialization.asset_key: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}  # fmt: skip


def test_incremental_plan_after_ui_edits_equals_a_full_plan(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = three_sandboxes
    settings_path = tmp_path / "crm_pipelines.yaml"
    _settings(settings_path, state_url, sandbox, None)
    settings = load_settings(settings_path)
    extract = build_extract_assets(settings)
    backfill(instance, settings, extract, build_resources(settings, str(settings_path), state_url=state_url))
    engine = create_state_engine(state_url)
    mapped_rt = sorted(mirror.read_records(engine, "salesforce", "RecordType")["id"].astype(str))[0]
    _settings(settings_path, state_url, sandbox, mapped_rt)  # deals of the other record type: DEAL-3 pipelines
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    unified_assets, plan_assets = build_unified_assets(settings), build_plan_assets()
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success

    first = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                           resources=resources)
    assert first.success
    meta = _meta(first)[PLANS["hubspot"]]
    assert meta["plan_mode"] == "full" and meta["plan_reason"] == "first plan"
    identities = sum(len(unified.read(engine, f"{k}_identities")) for k in ("contact", "company", "deal"))
    assert meta["identities_replanned_total"] == identities
    before = _stored(engine)
    assert before[("hubspot", "creates")]

    # -- a person's edits in the three CRMs ------------------------------------------------------------------
    opps = mirror.read_records(engine, "salesforce", "Opportunity").astype({"id": str})
    open_opp = opps[(opps["RecordTypeId"] == mapped_rt) & ~opps["IsClosed"].astype(bool)].sort_values("id").iloc[0]
    contact_links = link_store.load(engine, kind="contact")
    company_links = link_store.load(engine, kind="company").dropna(subset=["salesforce_id"])
    sf_contact = contact_links[contact_links["salesforce_type"] == "Contact"].sort_values("hubspot_id").iloc[0]
    account = company_links.sort_values("hubspot_id").iloc[-1]
    members = unified.read(engine, "contact_members")
    hs = members[members["crm"] == "hubspot"].sort_values("id")
    edited, doomed = hs.iloc[0], hs.iloc[1]
    dyn = members[members["crm"] == "dynamics"].sort_values("id").iloc[0]
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{edited['id']}", json={"properties": {"firstname": "Edited", "jobtitle": "CFO"}}
                 ).raise_for_status()
        ui.post("/contacts", json={"properties": {"email": "new.person@example.com", "firstname": "New"}}
                ).raise_for_status()
        long_name = ui.post("/contacts", json={"properties": {  # OPS-9: too long for a Lead (40), for Dynamics (50)
            "email": "long.name@example.com", "firstname": "F" * 45, "lastname": "L" * 55}})
        long_name.raise_for_status()
        ui.delete(f"/contacts/{doomed['id']}").raise_for_status()
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Opportunity/{open_opp['id']}", json={"StageName": "Closed Won"}).raise_for_status()  # DEAL-7
        ui.patch(f"/Contact/{sf_contact['salesforce_id']}", json={"AccountId": account["salesforce_id"]}
                 ).raise_for_status()  # DEAL-6
        ui.post("/Contact", json={"LastName": "Planned", "Email": "planned.contact@example.com"}).raise_for_status()
    with _ui(sandbox, "dynamics") as ui:
        ui.patch(f"/contacts/{dyn['id']}", json={"firstname": "Dyn", "jobtitle": "Buyer"}).raise_for_status()

    # -- the change sensor's runs bring them in; unified follows incrementally, then the plan --------------
    sensor = build_change_sensor(settings, daily_partitions(settings.extract))
    for request in evaluate(sensor, instance, resources).run_requests:
        run = dg.materialize(extract, selection=request.asset_selection, instance=instance, resources=resources,
                             partition_key=request.partition_key, tags=request.tags)
        assert run.success
    step = dg.materialize([unified_assets], instance=instance, resources=resources)
    assert step.success
    assert step.get_asset_materialization_events()[0].materialization.metadata["mode"].value == "incremental"
    incremental = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                                 resources=resources)
    assert incremental.success
    meta = _meta(incremental)[PLANS["hubspot"]]
    assert meta["plan_mode"] == "incremental", meta["plan_reason"]
    identities = sum(len(unified.read(engine, f"{k}_identities")) for k in ("contact", "company", "deal"))
    # only what the edits reach is replanned, and the stored plan moved
    assert 0 < meta["identities_replanned_total"] < identities / 4, (meta["identities_replanned"], identities)
    assert meta["stored_rows_written"] > 0
    after_incremental, summary_after = _stored(engine), _summary(engine)
    assert after_incremental != before

    # the edits show in the stored plan: DEAL-7 (the won deal's contacts become customers), the new Contact
    hubspot = build_plans(engine, settings)["hubspot"]
    created = hubspot.creates
    assert "planned.contact@example.com" in set(created["detail"].astype(str))
    assert open_opp["id"] in set(created.loc[created["object"] == "deal", "source_id"].astype(str))

    # incremental = full, table for table: a full plan rewrites nothing and stores the same rows ... (this one
    # merging the linked contacts and planning the tasks in a process of its own on PostgreSQL, as a large
    # state's full plan does)
    monkeypatch.setattr(plans_module, "ELSEWHERE_FROM", 0)
    full = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                          resources=resources, run_config={"ops": {"writeback_plans": {"config": {"full": True}}}})
    assert full.success
    meta = _meta(full)[PLANS["hubspot"]]
    assert meta["plan_mode"] == "full" and meta["stored_rows_written"] == 0
    assert ("elsewhere_s" in meta["plan_seconds"]) == state_url.startswith("postgresql")
    assert ("plan_elsewhere_peak_rss_mb" in meta) == state_url.startswith("postgresql")
    assert _stored(engine) == after_incremental
    # OPS-4's tasks among them (planned in that process too)
    assert any(scope.startswith("task:") for rows in after_incremental.values() for scope, _ in rows)
    # ... and OPS-9's findings of text too long for the other CRM's field, among the creates of either process
    findings = plan_store.read(engine, parts=["findings"])
    for target, too_long in (("salesforce", "FirstName is 45 characters"), ("dynamics", "lastname is 55 characters")):
        rows = findings[(target, "findings")]
        mine = rows[rows["id"].astype(str) == str(long_name.json()["id"])]
        assert mine["reason"].str.contains(too_long).sum() == 1, (target, mine["reason"].tolist())
    assert _summary(engine) == summary_after  # the counts the metadata shows, kept by difference
    # ... which are the plan computed whole from the state database
    stored = {k: sorted(h for _, h in v) for k, v in after_incremental.items() if k[1] in stored_parts()}
    assert stored == _content(build_plans(engine, settings))

    # a plan with nothing changed since replans nothing
    again = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                           resources=resources)
    meta = _meta(again)[PLANS["hubspot"]]
    assert meta["plan_mode"] == "unchanged" and meta["identities_replanned_total"] == 0


def _task_creates(engine) -> pd.DataFrame:
    creates = stored_plans(engine)["salesforce"].creates
    return creates[creates["object"] == "task"].set_index("source_id")


def test_ops_4_tasks_are_replanned_only_when_a_task_or_what_it_hangs_on_changed(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """OPS-4's tasks are stored per task: an incremental plan after a contact edit and an Opportunity edit
    replans at most the tasks of that Opportunity's deal and keeps the task rows; after a task edit it replans
    that task alone, and the stored plan still equals a full plan."""
    sandbox = three_sandboxes
    settings_path = tmp_path / "crm_pipelines.yaml"
    _settings(settings_path, state_url, sandbox, None)
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    extract, unified_assets, plan_assets = build_extract_assets(settings), build_unified_assets(settings), \
        build_plan_assets()
    backfill(instance, settings, extract, resources)
    engine = create_state_engine(state_url)

    def plan() -> dict:
        assert dg.materialize([unified_assets], instance=instance, resources=resources).success
        run = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                             resources=resources)
        assert run.success
        return _meta(run)[PLANS["salesforce"]]

    planned = plan()["tasks_replanned"]
    assert planned  # the first plan plans every task
    tasks = _task_creates(engine)
    assert len(tasks)
    task_id = sorted(tasks.index.astype(str))[0]
    contact = sorted(mirror.read_records(engine, "hubspot", "contacts")["id"].astype(str))[0]
    stored = _stored(engine)

    opportunity = sorted(mirror.read_records(engine, "salesforce", "Opportunity")["id"].astype(str))[0]
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{contact}", json={"properties": {"jobtitle": "Head of Tasks"}}).raise_for_status()
    # an edited Opportunity replans only its deal's tasks, which stay as they were (a deleted one would take them)
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Opportunity/{opportunity}", json={"Description": "Renewal talks"}).raise_for_status()
    assert sync_changes(settings, extract, instance, resources)
    meta = plan()
    assert meta["plan_mode"] == "incremental" and meta["tasks_replanned"] < planned
    assert _stored(engine)[("salesforce", "creates")] == stored[("salesforce", "creates")]

    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/tasks/{task_id}", json={"properties": {"hs_task_subject": "Call back about the renewal"}}
                 ).raise_for_status()
    assert sync_changes(settings, extract, instance, resources)
    meta = plan()
    assert meta["plan_mode"] == "incremental" and meta["tasks_replanned"] == 1
    assert _task_creates(engine).loc[task_id, "detail"] == "Call back about the renewal"

    full = dg.materialize([unified_assets, plan_assets], selection=list(PLANS.values()), instance=instance,
                          resources=resources, run_config={"ops": {"writeback_plans": {"config": {"full": True}}}})
    assert full.success and _meta(full)[PLANS["salesforce"]]["stored_rows_written"] == 0


def test_a_state_database_at_the_previous_version_upgrades_to_the_plan_store(state_url: str) -> None:
    """Frozen migrations: a database at version 7 (before the plan store) keeps its rows and gains the plan's
    tables; one at version 8 keeps its stored plan rows when they change type (PostgreSQL: ``jsonb`` to
    ``json``) and lose the scope index, then gain the conflicts' index (PostgreSQL, CONF-1/2); the plan then
    stores into them and finds a scope's rows again."""
    old = engine_for_url(state_url)
    assert migrate(old, to_version=7) == 7
    assert not sa.inspect(old).has_table("plan_rows")
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO unified_company_identities (identity_id, domain) VALUES ('c1', 'a.example')"))
    assert migrate(old, to_version=8) == 8
    assert "ix_plan_rows_scope" in {i["name"] for i in sa.inspect(old).get_indexes("plan_rows")}
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO plan_rows (target_crm, part, scope, row_hash, row) VALUES ('hubspot', "
                             "'creates', 'contact:i0', 7, '{\"object\": \"contact\", \"identity_id\": \"i0\"}')"))
    old.dispose()
    engine = create_state_engine(state_url)
    with engine.connect() as conn:
        assert current_version(conn) == STEPS[-1][0] >= 13
    inspector = sa.inspect(engine)
    assert {"plan_rows", "plan_changes"} <= set(inspector.get_table_names())
    plan_indexes = {i["name"] for i in inspector.get_indexes("plan_rows")}
    assert "ix_plan_rows_scope" not in plan_indexes
    assert ("ix_plan_rows_conflicts" in plan_indexes) == (engine.dialect.name == "postgresql")
    assert "ix_mirror_salesforce_opportunity_deleted" in {i["name"] for i in inspector.get_indexes(
        "mirror_salesforce_opportunity")}  # DEL-3: every plan reads the deleted Opportunities
    assert "ix_unified_company_identities_domain" in {i["name"] for i in inspector.get_indexes(
        "unified_company_identities")}
    assert unified.read(engine, "company_identities")["domain"].tolist() == ["a.example"]
    assert plan_store.read(engine)[("hubspot", "creates")]["identity_id"].tolist() == ["i0"]
    rows = plan_store.encode(pd.DataFrame({"object": ["contact"], "identity_id": ["i1"]}))
    with engine.begin() as conn:
        written = plan_store.write(conn, rows.assign(target_crm="hubspot", part="creates", scope="contact:i1"),
                                   {"contact:i0", "contact:i1"}, [("hubspot", "creates")])
    assert written.rows == 2 and plan_store.read(engine)[("hubspot", "creates")]["identity_id"].tolist() == ["i1"]


def test_ops_5_a_full_plan_drops_the_frames_an_older_plan_version_stored(state_url: str) -> None:
    """OPS-5: the stored plan is what the writes execute, so a frame (target, part) the plan no longer has (a
    part renamed by a newer plan version) must not outlive a full plan; the plan-wide rows (DEAL-3's pipelines)
    are the plan's own to replace and stay."""
    engine = create_state_engine(state_url)
    row = plan_store.encode(pd.DataFrame({"object": ["contact"], "identity_id": ["i1"]}))
    with engine.begin() as conn:
        for part, scope in (("retired", "contact:i1"), ("creates", "contact:i1"), ("creates", plan_store.GLOBAL)):
            plan_store.write(conn, row.assign(target_crm="hubspot", part=part, scope=scope), {scope},
                             [("hubspot", part)])
        plan_store.add_summary(conn, plan_store.summarize({("hubspot", "retired"): row, ("hubspot", "creates"): row}),
                               None)
        assert plan_store.drop_frames(conn, keep=[("hubspot", "creates")]) == 1
    assert plan_store.counts(engine) == {("hubspot", "creates"): 2}

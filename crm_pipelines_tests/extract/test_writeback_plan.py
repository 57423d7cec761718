"""The contact field plan (issue 12, OPS-5 dry run) through real Dagster runs on the three sandboxes, both
state backends: an edit made in a CRM's UI and brought in by the change sensor's runs shows up in the other
CRM's plan as old -> new with the rule that decided it (CONF-2), the plans write nothing, and a field under
``dont_sync`` (CONF-6) is never planned."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from crm_pipelines.cli import main
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.defs.writeback.plan_inputs import contact_create_plan, contact_merges
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, unified
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.sync import merge
from crm_pipelines.sync.field_plan import field_updates
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def test_an_edit_in_one_crm_is_planned_for_the_other_with_its_rule(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    sandbox = three_sandboxes
    settings_path = tmp_path / "crm_pipelines.yaml"
    sandbox_settings(settings_path, sandbox, state_url, sync={"salesforce": {"field_mappings": [
        {"hubspot": "phone", "other": "Phone", "object": "Contact", "rule": "dont_sync"}]}})  # fmt: skip
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    extract = build_extract_assets(settings)
    unified_assets, plans = build_unified_assets(settings), build_plan_assets()
    backfill(instance, settings, extract, resources)
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success
    engine = create_state_engine(state_url)

    links = link_store.load(engine, kind="contact")
    pairs = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()]
    hs_id, sf_id = str(pairs.iloc[0]["hubspot_id"]), str(pairs.iloc[0]["salesforce_id"])
    before = {crm: mirror.read_records(engine, crm, obj) for crm, obj in (("hubspot", "contacts"),
                                                                          ("salesforce", "Contact"))}
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_id}", json={"properties": {"firstname": "Zebediah", "phone": "+1 555 0100"}}
                 ).raise_for_status()  # fmt: skip
        # a new HubSpot contact: created in Salesforce as a Lead (CON-5 default) and in Dynamics
        made = ui.post("/contacts", json={"properties": {"email": "new.person@example.org", "firstname": "New"}})
        made.raise_for_status()
        new_id = str(made.json()["id"])

    sync_changes(settings, extract, instance, resources)
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success
    result = dg.materialize([unified_assets, plans], selection=list(PLANS.values()), instance=instance,
                            resources=resources)
    assert result.success

    updates = field_updates(contact_merges(engine, settings), "contact")
    sf = updates["salesforce"].set_index(["record_id", "field"])
    # HubSpot's edit is the later change (no baseline yet: a first sync), so it goes to Salesforce (CONF-2)
    row = sf.loc[(sf_id, "firstname")]
    assert row["new"] == "Zebediah" and row["decided_by"] == merge.LATEST
    # CONF-6: the phone is not synced with Salesforce, edited or not
    assert not (updates["salesforce"]["field"] == "phone").any()
    assert not ((updates["hubspot"]["source_crm"] == "salesforce") & (updates["hubspot"]["field"] == "phone")).any()
    # the plans are shown, and nothing was written to any CRM (a dry run)
    meta = {e.materialization.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta[PLANS["salesforce"]]["updates"].value == len(updates["salesforce"]) > 0
    assert "Zebediah" in meta[PLANS["salesforce"]]["sample_updates"].value or len(updates["salesforce"]) > 20
    after = {crm: mirror.read_records(engine, crm, obj) for crm, obj in (("hubspot", "contacts"),
                                                                         ("salesforce", "Contact"))}
    sf_before = before["salesforce"].set_index("id").loc[sf_id]
    sf_after = after["salesforce"].set_index("id").loc[sf_id]
    assert sf_after["FirstName"] == sf_before["FirstName"] and sf_after["modified_at"] == sf_before["modified_at"]

    creates, left_out = contact_create_plan(engine, settings)
    to_sf = creates["salesforce"].set_index("source_id")
    assert to_sf.loc[new_id, "object_type"] == "Lead" and to_sf.loc[new_id, "email"] == "new.person@example.org"
    assert new_id in set(creates["dynamics"]["source_id"])
    assert meta[PLANS["salesforce"]]["creates_by_object"].value["contact"] == len(creates["salesforce"])
    # OPS-8: the calls the plan takes at 200 records a call (each object and action batched apart); no limit set
    plan = build_plans(engine, settings)["salesforce"]
    sf_records = plan.work().groupby(["action", "object"]).size()
    assert meta[PLANS["salesforce"]]["api_calls_planned"].value == sum(-(-n // 200) for n in sf_records if n)
    assert meta[PLANS["salesforce"]]["deferred_records"].value == 0
    checks = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    assert checks[(PLANS["salesforce"], "plan_within_budget")].passed  # no call limit set
    assert checks[(PLANS["salesforce"], "conflicts_resolved_by_window")].metadata["count"].value == 0
    # every HubSpot contact missing in Salesforce is either planned or left out with a reason
    identities = unified.read(engine, "contact_identities")
    missing = set(identities.loc[identities["hubspot_id"].notna() & identities["salesforce_id"].isna(), "hubspot_id"])
    skipped = left_out[left_out["target_crm"] == "salesforce"]
    assert missing == set(to_sf.index) | set(skipped["source_id"])

    # `crm-pipelines plan` prints the same, from the state database
    printed = CliRunner().invoke(main, ["plan", "--settings", str(settings_path), "--crm", "salesforce",
                                        "--format", "json"])
    assert printed.exit_code == 0, printed.output
    planned = json.loads(printed.output)["salesforce"]["updates"]
    # OPS-9: a create's values are read from the state when shown (the stored plan keeps the create only): the
    # new contact reaches Salesforce with its email, and the asset's sample shows its sampled creates' values
    carried = [v for v in json.loads(printed.output)["salesforce"]["create_values"] if v["source_id"] == new_id]
    assert {(v["target_field"], v["api_value"]) for v in carried} >= {("Email", "new.person@example.org")}
    sample = meta[PLANS["salesforce"]]["sample_create_values"].value
    assert sample != "_none_" and sample.count("\n") >= 3
    assert {"record_id": sf_id, "field": "firstname", "new": "Zebediah"}.items() <= next(
        u for u in planned if u["record_id"] == sf_id and u["field"] == "firstname").items()
    table = CliRunner().invoke(main, ["plan", "--settings", str(settings_path)])
    assert table.exit_code == 0 and "Zebediah" in table.output and "salesforce:" in table.output

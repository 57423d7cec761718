"""Deletions in the plans (issue 12, DEL-1..4) through real Dagster runs on the three sandboxes, both state
backends: records deleted in the CRMs' UIs, brought in by the change sensor's extracts and ``unified``, show
in the HubSpot plan as deletes or as deletions kept with their rule: a Salesforce Contact deleted deletes its
HubSpot contact (DEL-2, switch on), a Lead deleted does not (switch off by default), a Dynamics contact
deleted never does (DEL-1), a HubSpot contact deleted never deletes in Salesforce (DEL-2), an Opportunity
deleted deletes its linked HubSpot deal and a HubSpot deal deleted keeps its Opportunity (DEL-3), an Account
deleted keeps its HubSpot company; nothing deleted is planned to be created again (DEL-4). The same plans
state the values creates carry and plan HubSpot's tasks as Salesforce Tasks (OPS-4)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from crm_pipelines.cli import main
from crm_pipelines.defs.extract import sensors
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def _unique_email_links(engine, links: pd.DataFrame, sf_type: str) -> list[str]:
    """HubSpot ids linked to a Salesforce record of ``sf_type`` whose email no other Salesforce record carries
    (so deleting it leaves the HubSpot contact without another Salesforce match)."""
    emails = pd.concat([mirror.read_records(engine, "salesforce", obj, columns=["Email"])
                        for obj in ("Lead", "Contact")], ignore_index=True)  # fmt: skip
    emails = emails.dropna(subset=["Email"])
    counts = emails["Email"].astype(str).str.strip().str.lower().value_counts()
    by_id = emails.set_index(emails["id"].astype(str))["Email"].astype(str).str.strip().str.lower()
    mine = links[(links["salesforce_type"] == sf_type) & links["dynamics_id"].isna()]
    once = mine["salesforce_id"].astype(str).map(by_id).map(counts).eq(1)
    return sorted(mine.loc[once.to_numpy(dtype=bool), "hubspot_id"].astype(str))


def _link_deals(engine, pairs: list[tuple[str, str]]) -> None:
    """Deal links as the writes make them (deals are linked only by the sync's own writes, DEAL-5)."""
    new = pd.DataFrame([("deal", h, f"hubspot:{h}", s, "Opportunity", None, None, "sync") for h, s in pairs],
                       columns=list(link_store.COLUMNS)).astype(object)
    changes = pd.DataFrame([("deal", h, "created", None, {"hubspot_id": h, "salesforce_id": s}, "created by the sync")
                            for h, s in pairs], columns=["kind", "hubspot_id", "change", "before", "after", "reason"])
    with engine.begin() as conn:
        link_store.apply(conn, new, changes)


def test_deletions_made_in_the_crms_are_planned_per_del_1_to_4(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = three_sandboxes
    # the Lead switch stays off (DEL-2's default)
    settings_path = sandbox_settings(tmp_path / "crm_pipelines.yaml", sandbox, state_url,
                                     sync={"salesforce": {"delete_contact_when_contact_deleted": True}})
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    extract = build_extract_assets(settings)
    unified_assets, plans = build_unified_assets(settings), build_plan_assets()
    backfill(instance, settings, extract, resources)
    engine = create_state_engine(state_url)
    # two HubSpot deals linked to two Opportunities, as the writes would have linked them
    hs_deals = sorted(mirror.read_records(engine, "hubspot", "deals", columns=[])["id"].astype(str))
    opps = sorted(mirror.read_records(engine, "salesforce", "Opportunity", columns=[])["id"].astype(str))
    (deal_a, opp_a), (deal_b, opp_b) = (hs_deals[0], opps[0]), (hs_deals[1], opps[1])
    _link_deals(engine, [(deal_a, opp_a), (deal_b, opp_b)])
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success

    links = link_store.load(engine, kind="contact")
    by_contact, by_lead = _unique_email_links(engine, links, "Contact"), _unique_email_links(engine, links, "Lead")
    sf_contact_gone, hs_deleted = by_contact[0], by_contact[1]
    sf_lead_gone = by_lead[0]
    dyn = links[links["dynamics_id"].notna() & ~links["hubspot_id"].isin([sf_contact_gone, hs_deleted, sf_lead_gone])]
    dyn_gone = dyn.iloc[0]
    sf_of = links.set_index("hubspot_id")["salesforce_id"]
    company = link_store.load(engine, kind="company").dropna(subset=["salesforce_id"]).iloc[0]
    with _ui(sandbox, "salesforce") as ui:
        ui.delete(f"/Contact/{sf_of[sf_contact_gone]}").raise_for_status()
        ui.delete(f"/Lead/{sf_of[sf_lead_gone]}").raise_for_status()
        ui.delete(f"/Opportunity/{opp_a}").raise_for_status()
        ui.delete(f"/Account/{company['salesforce_id']}").raise_for_status()
    with _ui(sandbox, "hubspot") as ui:
        ui.delete(f"/contacts/{hs_deleted}").raise_for_status()
        ui.delete(f"/deals/{deal_b}").raise_for_status()
    with _ui(sandbox, "dynamics") as ui:
        ui.delete(f"/{'contacts' if dyn_gone['dynamics_type'] == 'contact' else 'leads'}/{dyn_gone['dynamics_id']}"
                  ).raise_for_status()  # fmt: skip

    # a deletion leaves no trace in the change polls: the sensor's deletion sweep brings it in (hourly, DEL-5);
    # here the hour has passed
    monkeypatch.setattr(sensors, "DELETION_SWEEP_EVERY", timedelta(0))
    assert sync_changes(settings, extract, instance, resources) > 0
    result = dg.materialize([unified_assets, plans], instance=instance, resources=resources)
    assert result.success
    planned = build_plans(engine, settings)
    hubspot = planned["hubspot"]

    # DEL-2 (switch on) and DEL-3: exactly the HubSpot contact of the deleted Contact and the deal of the
    # deleted Opportunity are deleted in HubSpot
    deletes = hubspot.deletes.set_index("record_id")
    assert sorted(deletes.index) == sorted([sf_contact_gone, deal_a])
    assert deletes.loc[sf_contact_gone, "rule"] == f"DEL-2 its Salesforce Contact {sf_of[sf_contact_gone]} was deleted"
    assert deletes.loc[deal_a, ["object", "deleted_id"]].tolist() == ["deal", opp_a]
    assert deletes.loc[deal_a, "rule"].startswith("DEL-3")
    # nothing is ever deleted in Salesforce or Dynamics
    assert planned["salesforce"].deletes.empty and planned["dynamics"].deletes.empty

    kept = pd.concat([p.not_deleted for p in planned.values()], ignore_index=True)
    why = kept.set_index("source_id")["reason"]
    assert why.str.startswith("not deleted: ").all()  # their own part: no other left-out candidate among them
    assert "delete_contact_when_lead_deleted" in why[sf_of[sf_lead_gone]]  # DEL-2: the Lead switch is off
    assert why[str(dyn_gone["dynamics_id"])].startswith("not deleted: DEL-1")
    assert why[hs_deleted].startswith("not deleted: DEL-2 a HubSpot contact deleted")
    assert why[deal_b].startswith("not deleted: DEL-3 deleting a HubSpot deal")
    assert why[str(company["salesforce_id"])].startswith("not deleted: companies are never deleted")

    # DEL-4: nothing deleted comes back by itself: the contacts and the deals are not planned to be created
    sf_creates = planned["salesforce"].creates
    assert not {sf_contact_gone, sf_lead_gone, deal_b, str(company["hubspot_id"])} & set(sf_creates["source_id"])
    assert hs_deleted not in set(hubspot.creates["source_id"]) and sf_of[hs_deleted] not in set(
        hubspot.creates["source_id"])
    assert opp_a not in set(hubspot.creates["source_id"])

    # a create states the values it is created with: a HubSpot contact planned in Salesforce carries its email
    made = sf_creates[sf_creates["object"] == "contact"].iloc[0]
    values = planned["salesforce"].create_values
    carried = values[values["source_id"] == made["source_id"]].set_index("target_field")["value"]
    assert carried["Email"] == made["detail"].strip().lower() or carried["Email"] == made["detail"]

    # OPS-4: HubSpot's seeded tasks go to Salesforce as Tasks on the linked record of their contact or deal
    tasks = sf_creates[sf_creates["object"] == "task"]
    assert len(tasks) and set(tasks["object_type"]) == {"Task"}
    on = values[values["target_field"].isin(["WhoId", "WhatId"])]
    assert set(tasks["source_id"]) == set(on["source_id"])
    linked_sf = set(link_store.load(engine, kind="contact")["salesforce_id"].dropna()) | {opp_b}
    assert set(on["value"]) <= linked_sf
    assert planned["salesforce"].counts().loc["task", "create"] == len(tasks)

    # the plan shows it: deletes counted, sampled, and in the calls (OPS-8)
    meta = {e.materialization.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    shown = meta[PLANS["hubspot"]]
    # the deletions not carried are their own part of the stored plan (all of them, each target's reasons)
    assert sum(sum(meta[key]["not_deleted"].value.values()) for key in PLANS.values()) == len(kept)
    assert shown["deletes"].value == 2 and shown["deletes_by_object"].value == {"contact": 1, "deal": 1}
    assert opp_a in shown["sample_deletes"].value and "| delete |" in shown["api_calls_by_object"].value
    printed = CliRunner().invoke(main, ["plan", "--settings", str(settings_path), "--crm", "hubspot",
                                        "--format", "json"])
    assert printed.exit_code == 0, printed.output
    assert {d["record_id"] for d in json.loads(printed.output)["hubspot"]["deletes"]} == {sf_contact_gone, deal_a}

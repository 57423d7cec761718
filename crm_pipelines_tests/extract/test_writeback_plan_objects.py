"""Companies, deals and associations in the plans (issue 12, OPS-5 dry run) through real Dagster runs on the
three sandboxes, both state backends: Opportunities planned into their mapped HubSpot stage (DEAL-2, closed
won as closed won: DEAL-4) or into a new `Salesforce - <RecordTypeId>` pipeline the plan creates (DEAL-3),
unmapped stages reported per record; an Opportunity closed won in Salesforce's UI makes its HubSpot contact
a customer (DEAL-7); an Account set on a Contact in Salesforce's UI becomes a HubSpot association (DEAL-6);
Accounts planned only for companies with a contact syncing as a Contact (COM-2); all of it in the plans'
metadata and `crm-pipelines plan`."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
from click.testing import CliRunner

from crm_pipelines.cli import main
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, unified
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.transform.lifecycle import rank
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

CUSTOMER = int(rank(pd.Series(["customer"])).iloc[0])
STAGES = {"Prospecting": "appointmentscheduled", "Closed Won": "closedwon", "Closed Lost": "closedlost"}


def _write_settings(path: Path, state_url: str, sandbox: RunningSandbox, record_type: str | None) -> None:
    deals = {"closed_won_sets_customer": True}
    if record_type:
        deals["pipelines"] = [{"other_pipeline": record_type, "hubspot_pipeline": "default", "stages": STAGES}]
    sandbox_settings(path, sandbox, state_url, sync={"salesforce": {"deals": deals}})


def unassociated_contact_and_account(engine, contact_links: pd.DataFrame) -> tuple:
    """A linked Salesforce Contact and a linked Account that HubSpot does not associate (their link rows): what
    a person's ``AccountId`` edit in Salesforce makes a HubSpot association of (DEAL-6)."""
    company_links = link_store.load(engine, kind="company").dropna(subset=["salesforce_id"])
    pairs = unified.read(engine, "contact_company")
    held = set(zip(pairs.loc[pairs["crm"] == "hubspot", "contact_identity"],
                   pairs.loc[pairs["crm"] == "hubspot", "company_identity"], strict=True))
    sf_contacts = contact_links[contact_links["salesforce_type"] == "Contact"]
    return next((c, a) for c in sf_contacts.itertuples() for a in company_links.itertuples()
                if (c.identity_id, a.identity_id) not in held)


def test_companies_deals_and_associations_are_planned_from_edits_in_the_crms(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    sandbox = three_sandboxes
    settings_path = tmp_path / "crm_pipelines.yaml"
    _write_settings(settings_path, state_url, sandbox, None)
    settings = load_settings(settings_path)
    extract = build_extract_assets(settings)
    backfill(instance, settings, extract, build_resources(settings, str(settings_path), state_url=state_url))
    engine = create_state_engine(state_url)
    # the org's two record types: the first mapped onto HubSpot's default pipeline, the other left unmapped
    mapped_rt, unmapped_rt = sorted(mirror.read_records(engine, "salesforce", "RecordType")["id"].astype(str))
    _write_settings(settings_path, state_url, sandbox, mapped_rt)
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    unified_assets, plans = build_unified_assets(settings), build_plan_assets()
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success

    # an open Opportunity of the mapped record type whose contact role is a HubSpot contact not yet a customer
    opps = mirror.read_records(engine, "salesforce", "Opportunity").astype({"id": str})
    roles = mirror.read_records(engine, "salesforce", "OpportunityContactRole")
    contact_links = link_store.load(engine, kind="contact")
    stage_now = unified.read(engine, "contact_lifecycle").set_index("id")["lifecyclestage"]
    cand = roles.merge(opps[["id", "RecordTypeId", "IsClosed"]].rename(columns={"id": "OpportunityId"}),
                       on="OpportunityId").merge(contact_links[["hubspot_id", "salesforce_id"]].rename(
                           columns={"salesforce_id": "ContactId"}), on="ContactId")  # fmt: skip
    cand = cand[(cand["RecordTypeId"] == mapped_rt) & ~cand["IsClosed"].astype(bool)
                & (rank(cand["hubspot_id"].map(stage_now)) < CUSTOMER).fillna(False)]  # fmt: skip
    won_opp, won_contact = str(cand.iloc[0]["OpportunityId"]), str(cand.iloc[0]["hubspot_id"])
    contact, company = unassociated_contact_and_account(engine, contact_links)
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Opportunity/{won_opp}", json={"StageName": "Closed Won"}).raise_for_status()
        ui.patch(f"/Contact/{contact.salesforce_id}", json={"AccountId": company.salesforce_id}).raise_for_status()

    sync_changes(settings, extract, instance, resources)
    assert dg.materialize([unified_assets], instance=instance, resources=resources).success
    result = dg.materialize([unified_assets, plans], selection=list(PLANS.values()), instance=instance,
                            resources=resources)
    assert result.success
    planned = build_plans(engine, settings)
    hubspot = planned["hubspot"]

    # DEAL-2/DEAL-4: the won Opportunity is created in HubSpot's default pipeline, closed won
    deals = hubspot.creates[hubspot.creates["object"] == "deal"].set_index("source_id")
    assert deals.loc[won_opp, ["pipeline", "stage"]].tolist() == ["default", "closedwon"]
    # every open Opportunity of the mapped type in an unmapped stage is reported, naming the record
    findings = hubspot.findings.set_index("id")["reason"]
    opps = mirror.read_records(engine, "salesforce", "Opportunity").astype({"id": str})
    unmapped = opps[(opps["RecordTypeId"] == mapped_rt) & ~opps["StageName"].isin(list(STAGES))]
    assert len(unmapped) and set(unmapped["id"]) <= set(findings.index) and not set(unmapped["id"]) & set(deals.index)
    assert all(findings[i].startswith("DEAL-2 unmapped stage") for i in unmapped["id"])
    # DEAL-3: the unmapped record type's deals go to `Salesforce - <RecordTypeId>`, created first by the plan
    other = opps[opps["RecordTypeId"] == unmapped_rt]
    assert set(deals.loc[deals.index.isin(other["id"]), "pipeline"]) == {f"Salesforce - {unmapped_rt}"}
    assert set(other["id"]) <= set(deals.index)
    new_pipelines = hubspot.creates[hubspot.creates["object"] == "pipeline"]
    assert new_pipelines["source_id"].tolist() == [f"Salesforce - {unmapped_rt}"]

    # DEAL-7: the won deal's contact becomes a customer in HubSpot
    lifecycle = hubspot.updates[(hubspot.updates["field"] == "lifecyclestage") & (hubspot.updates["kind"] == "contact")]
    row = lifecycle.set_index("record_id").loc[won_contact]
    assert row["new"] == "customer" and row["decided_by"].startswith("DEAL-7")

    # DEAL-6: the Account set in Salesforce becomes a HubSpot contact->company association
    assoc = hubspot.associations
    made = assoc[(assoc["object"] == "contact_company") & (assoc["from_id"] == contact.hubspot_id)
                 & (assoc["to_id"] == company.hubspot_id)]  # fmt: skip
    assert made[["source_crm", "via", "action"]].values.tolist() == [["salesforce", "association", "associate"]]

    # COM-2: Accounts are planned exactly for the HubSpot companies the transform found qualifying
    candidates = unified.read(engine, "account_candidates")
    sf_companies = planned["salesforce"].creates
    assert set(sf_companies.loc[sf_companies["object"] == "company", "source_id"]) == set(
        candidates.loc[candidates["qualifies"].astype(bool), "hubspot_id"])

    # the plans show it: counts per object and action, samples, findings, calls per object
    meta = {e.materialization.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    shown = meta[PLANS["hubspot"]]
    assert shown["creates_by_object"].value["deal"] == len(deals)
    assert shown["associations"].value == len(assoc) and shown["findings"].value == len(hubspot.findings)
    assert "| contact_company |" in shown["counts"].value and "| pipeline |" in shown["api_calls_by_object"].value
    # a pipeline is one call; the rest at 100 records a call
    work = hubspot.work().groupby(["action", "object"]).size()
    assert shown["api_calls_planned"].value == sum(n if obj == "pipeline" else -(-n // 100)
                                                   for (_, obj), n in work.items())

    printed = CliRunner().invoke(main, ["plan", "--settings", str(settings_path), "--crm", "hubspot",
                                        "--format", "json"])
    assert printed.exit_code == 0, printed.output
    shown = json.loads(printed.output)["hubspot"]
    assert {(a["from_id"], a["to_id"]) for a in shown["associations"]} >= {(contact.hubspot_id, company.hubspot_id)}
    assert {f["id"] for f in shown["findings"]} == set(hubspot.findings["id"])
    assert shown["api_calls"]["planned"] == meta[PLANS["hubspot"]]["api_calls_planned"].value
    table = CliRunner().invoke(main, ["plan", "--settings", str(settings_path), "--crm", "hubspot"])
    assert table.exit_code == 0 and f"Salesforce - {unmapped_rt}" in table.output and "finding:" in table.output

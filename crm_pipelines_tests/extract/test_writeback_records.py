"""Write-back of companies, deals, pipelines and associations (issue 13) end to end, on both state backends,
through real Dagster runs on the three sandboxes, asserted through the CRMs' own APIs: an Opportunity of an
unmapped record type lands in a `Salesforce - <RecordTypeId>` pipeline the writes create (DEAL-3); one closed
won in Salesforce's UI is a closed-won HubSpot deal (DEAL-2/DEAL-4) and makes its contact a customer (DEAL-7);
an Account set on a Contact in Salesforce's UI is a HubSpot association (DEAL-6); Accounts are created only
for companies with a contact syncing as a Contact (COM-2); a HubSpot deal with a contact becomes an
Opportunity with an OpportunityContactRole (DEAL-6); a HubSpot task a Salesforce Task on its contact's record
(OPS-4); the same deal closed won in HubSpot is won in Dataverse by its action (DEAL-4); each create carries
the sync's key, by which it is found again (Invariant 1); then the sync converges, and ten more cycles write
nothing (CONF-5)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS
from crm_pipelines.defs.writeback.write_assets import WRITES
from crm_pipelines.defs.writeback.write_run import write_target
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, outbox, unified
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.state.schema import write_outbox
from crm_pipelines.transform.lifecycle import rank
from crm_pipelines_tests.extract.test_extract import sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.extract.test_writeback_contacts import _converge, _cycle, _find, _get, _world, _write_run
from crm_pipelines_tests.extract.test_writeback_plan_objects import unassociated_contact_and_account
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

CRMS = ("hubspot", "salesforce", "dynamics")
CUSTOMER = int(rank(pd.Series(["customer"])).iloc[0])
STAGES = {"Prospecting": "appointmentscheduled", "Closed Won": "closedwon", "Closed Lost": "closedlost"}


def _call(settings, crm: str, work) -> Any:
    async def run() -> Any:
        async with open_client(crm, settings, Secrets({})) as client:
            return await work(client)

    return asyncio.run(run())


def _associated(settings, from_type: str, from_id: str, to_type: str) -> set[str]:
    data = _get(settings, "hubspot", f"/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}")
    return {str(r["toObjectId"]) for r in data["results"]}


def test_com2_deal2_deal3_deal6_deal7_companies_deals_and_associations_are_written_to_every_crm(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    sandbox = three_sandboxes
    world = _world(tmp_path, sandbox, state_url, instance)
    engine = world["engine"]
    # the org's two record types: the first mapped onto HubSpot's default pipeline, the other left unmapped
    mapped_rt, unmapped_rt = sorted(mirror.read_records(engine, "salesforce", "RecordType")["id"].astype(str))
    deals = {"closed_won_sets_customer": True,
             "pipelines": [{"other_pipeline": mapped_rt, "hubspot_pipeline": "default", "stages": STAGES}]}
    # Dataverse's sales process onto HubSpot's default pipeline, its closed states onto closed won / lost
    dyn_stages = {"Qualify": "appointmentscheduled", "Won": "closedwon", "Lost": "closedlost"}
    dyn_deals = {"pipelines": [{"other_pipeline": "standard", "hubspot_pipeline": "default", "stages": dyn_stages}]}
    path = sandbox_settings(tmp_path / "crm_pipelines.yaml", sandbox, state_url,
                            sync={"salesforce": {"deals": deals}, "dynamics": {"deals": dyn_deals}})
    settings = load_settings(path)
    world |= {"settings": settings, "resources": build_resources(settings, str(path), state_url=state_url),
              "extract": build_extract_assets(settings), "unified": build_unified_assets(settings)}
    _write_run(world)  # the first sync
    # COM-2: the HubSpot companies an Account is created for, as the first sync's transform found them
    candidates = unified.read(engine, "account_candidates")
    sync_changes(settings, world["extract"], instance, world["resources"])
    _write_run(world)  # the records the first one created are read back: their associations go now

    # an open Opportunity of the mapped type, now a HubSpot deal, whose contact role is a HubSpot contact not yet
    # a customer; it is closed won in Salesforce's UI
    opps = mirror.read_records(engine, "salesforce", "Opportunity").astype({"id": str})
    roles = mirror.read_records(engine, "salesforce", "OpportunityContactRole")
    contact_links = link_store.load(engine, kind="contact")
    stage_now = unified.read(engine, "contact_lifecycle").set_index("id")["lifecyclestage"]
    cand = roles.merge(opps[["id", "RecordTypeId", "IsClosed", "StageName"]].rename(columns={"id": "OpportunityId"}),
                       on="OpportunityId").merge(contact_links[["hubspot_id", "salesforce_id"]].rename(
                           columns={"salesforce_id": "ContactId"}), on="ContactId")  # fmt: skip
    cand = cand[(cand["RecordTypeId"] == mapped_rt) & cand["StageName"].eq("Prospecting")
                & (rank(cand["hubspot_id"].map(stage_now)) < CUSTOMER).fillna(False)]  # fmt: skip
    won_opp, won_contact = str(cand.iloc[0]["OpportunityId"]), str(cand.iloc[0]["hubspot_id"])
    deal_links = link_store.load(engine, kind="deal").set_index("salesforce_id")
    won_deal = str(deal_links.loc[won_opp, "hubspot_id"])
    # DEAL-6: the Opportunity's contact roles became the HubSpot deal's contacts once both records existed
    assert won_contact in _associated(settings, "deals", won_deal, "contacts")
    contact, company = unassociated_contact_and_account(engine, contact_links)
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Opportunity/{won_opp}", json={"StageName": "Closed Won"}).raise_for_status()
        ui.patch(f"/Contact/{contact.salesforce_id}", json={"AccountId": company.salesforce_id}).raise_for_status()
    # a HubSpot deal in a mapped stage with a contact that syncs as a Salesforce Contact
    with _ui(sandbox, "hubspot") as ui:
        made = ui.post("/deals", json={"properties": {
            "dealname": "Hub deal", "pipeline": "default", "dealstage": "appointmentscheduled", "amount": "1200",
            "closedate": (date.today() + timedelta(days=30)).isoformat()}})  # fmt: skip
        made.raise_for_status()
    hub_deal = str(made.json()["id"])
    _call(settings, "hubspot", lambda c: c.associate("deals", "contacts", [(hub_deal, str(contact.hubspot_id))]))
    # OPS-4: a HubSpot task on that contact
    with _ui(sandbox, "hubspot") as ui:
        due = (date.today() + timedelta(days=2)).isoformat()
        made = ui.post("/tasks", json={"properties": {"hs_task_subject": "Call back", "hs_task_status": "NOT_STARTED",
                                                      "hs_timestamp": due}})  # fmt: skip
        made.raise_for_status()
    task = str(made.json()["id"])
    _call(settings, "hubspot", lambda c: c.associate("tasks", "contacts", [(task, str(contact.hubspot_id))]))
    sync_changes(settings, world["extract"], instance, world["resources"])
    meta = _write_run(world)
    assert meta[WRITES["salesforce"]]["created"] >= 1

    # DEAL-2/DEAL-4: the won Opportunity is closed won in HubSpot's default pipeline
    deal = _get(settings, "hubspot", f"/crm/v3/objects/deals/{won_deal}", {"properties": "pipeline,dealstage"})
    assert (deal["properties"]["pipeline"], deal["properties"]["dealstage"]) == ("default", "closedwon")
    # DEAL-7: its contact is a customer in HubSpot
    person = _get(settings, "hubspot", f"/crm/v3/objects/contacts/{won_contact}", {"properties": "lifecyclestage"})
    assert person["properties"]["lifecyclestage"] == "customer"
    # DEAL-6: the Account set in Salesforce is the contact's company in HubSpot
    assert str(company.hubspot_id) in _associated(settings, "contacts", str(contact.hubspot_id), "companies")

    # DEAL-3: the unmapped record type's Opportunities are deals in `Salesforce - <RecordTypeId>`, a pipeline
    # the writes created with Salesforce's stage names (closed ones closed: DEAL-4)
    pipelines = {p["label"]: p for p in _call(settings, "hubspot", lambda c: c.pipelines("deals"))}
    new = pipelines[f"Salesforce - {unmapped_rt}"]
    stage_by_id = {s["id"]: s for s in new["stages"]}
    other = opps[(opps["RecordTypeId"] == unmapped_rt) & ~opps["IsDeleted"].astype(bool)] \
        if "IsDeleted" in opps else opps[opps["RecordTypeId"] == unmapped_rt]
    keys = [f"salesforce:{i}" for i in other["id"]]
    found = _find(settings, "hubspot", "deals", "crm_pipelines_key", keys)
    assert set(found) == {k.lower() for k in keys}  # each created once, found by the key it carries
    for opp in other.to_dict("records"):
        deal_id = found[f"salesforce:{opp['id']}".lower()]
        hs = _get(settings, "hubspot", f"/crm/v3/objects/deals/{deal_id}", {"properties": "pipeline,dealstage"})
        hs = hs["properties"]
        assert hs["pipeline"] == new["id"] and stage_by_id[hs["dealstage"]]["label"] == opp["StageName"]
        closed = stage_by_id[hs["dealstage"]]["metadata"]["isClosed"] == "true"
        assert closed == bool(opp["IsClosed"])

    # COM-2: Accounts exist for the HubSpot companies with a contact syncing as a Contact, and only for them
    qualifying = candidates.loc[candidates["qualifies"].astype(bool), "hubspot_id"].astype(str).tolist()
    not_qualifying = candidates.loc[~candidates["qualifies"].astype(bool), "hubspot_id"].astype(str).tolist()
    assert qualifying and not_qualifying
    accounts = _find(settings, "salesforce", "Account", "External_Id__c",
                     [f"hubspot:{i}" for i in qualifying + not_qualifying])
    assert set(accounts) == {f"hubspot:{i}" for i in qualifying}

    # DEAL-6: the HubSpot deal is an Opportunity in the mapped stage, with its contact as a contact role
    opp_id = _find(settings, "salesforce", "Opportunity", "External_Id__c", [f"hubspot:{hub_deal}"])
    assert set(opp_id) == {f"hubspot:{hub_deal}"}
    opp = _get(settings, "salesforce", f"sobjects/Opportunity/{opp_id[f'hubspot:{hub_deal}']}")
    assert (opp["StageName"], opp["RecordTypeId"], opp["Name"]) == ("Prospecting", mapped_rt, "Hub deal")
    _converge(world)  # the Opportunity is read back and linked; its contact role follows
    query = (f"SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId = "
             f"'{opp_id[f'hubspot:{hub_deal}']}'")
    data = _get(settings, "salesforce", "query", {"q": query})
    assert [r["ContactId"] for r in data["records"]] == [str(contact.salesforce_id)]

    # OPS-4: the task is a Salesforce Task on the contact's record
    sf_task = _find(settings, "salesforce", "Task", "External_Id__c", [f"hubspot:{task}"])
    assert set(sf_task) == {f"hubspot:{task}"}
    written = _get(settings, "salesforce", f"sobjects/Task/{sf_task[f'hubspot:{task}']}")
    assert (written["Subject"], written["WhoId"], written["Status"]) == (
        "Call back", str(contact.salesforce_id), "Not Started")

    # DEAL-4: the HubSpot deal is a Dataverse opportunity too; closed won in HubSpot, Dataverse's is won (closed by
    # its action, not a value)
    dyn_opp = _find(settings, "dynamics", "opportunities", "crm_pipelines_key", [f"hubspot:{hub_deal}"])
    assert set(dyn_opp) == {f"hubspot:{hub_deal}"}
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/deals/{hub_deal}", json={"properties": {"dealstage": "closedwon"}}).raise_for_status()
    _converge(world)
    opp_state = _get(settings, "dynamics", f"opportunities({dyn_opp[f'hubspot:{hub_deal}']})",
                     {"$select": "statecode,salesstage"})
    assert opp_state["statecode"] == 1  # won

    # CONF-5: converged, ten more cycles without outside edits write nothing and spend no write calls
    assert [_cycle(world) for _ in range(10)] == [0] * 10


def test_invariant2_the_three_crms_write_runs_side_by_side_keep_every_record_in_the_links(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """The write runs of the three CRMs at once (threads, each its own client and connections to the state
    database, as a Dagster run's steps in their own processes): the first sync creates each HubSpot contact in
    Salesforce and in Dynamics, and both creates add their record to the same link. Each link ends holding every
    record the outbox confirms for it, none lost to the other run's update (Invariant 2). (The race it guards
    against, between a link's read and its write, is narrow: this test also passed before the writes took
    their lock, ``write_run.LINKS_LOCK``; the lock rules it out by construction.)"""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings, engine = world["settings"], world["engine"]
    assert dg.materialize([world["unified"]], instance=instance, resources=world["resources"]).success
    assert dg.materialize([world["unified"], world["plans"]], selection=list(PLANS.values()), instance=instance,
                          resources=world["resources"]).success  # fmt: skip

    def write(crm: str) -> Any:
        async def run() -> Any:
            async with open_client(crm, settings, Secrets({})) as client:
                return await write_target(create_state_engine(state_url), settings, crm, client)

        return asyncio.run(run())

    with ThreadPoolExecutor(3) as pool:
        reports = dict(zip(CRMS, pool.map(write, CRMS), strict=True))
    assert reports["salesforce"].created and reports["dynamics"].created
    with engine.connect() as conn:
        done = conn.execute(sa.select(write_outbox.c.target_crm, write_outbox.c.target_id, write_outbox.c.confirm)
                            .where(write_outbox.c.status == outbox.DONE, write_outbox.c.operation == "create",
                                   write_outbox.c.target_crm != "hubspot")).all()  # fmt: skip
    links = link_store.load(engine, kind="contact").set_index("hubspot_id")
    both = 0
    for crm, target_id, confirm in done:
        made = json.loads(confirm)
        if made["kind"] != "contact":
            continue
        assert links.loc[made["hubspot_id"], f"{crm}_id"] == target_id, (crm, made["hubspot_id"])
        both += 1
    assert both >= 20

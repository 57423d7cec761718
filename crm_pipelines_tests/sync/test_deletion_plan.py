"""Which deletions a plan carries to the other app and which it keeps, with the rule (``sync/deletion_plan.py``):
DEL-1, DEL-2, DEL-3, companies never, merges and restores are no deletions, CON-1 direction, OPS-8 calls."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.calls import calls_needed, fit_budget
from crm_pipelines.sync.company_plan import CompanyCreateSettings, company_creates
from crm_pipelines.sync.deal_plan import DealCreateSettings, deal_creates
from crm_pipelines.sync.deletion_plan import DeletionSettings, deal_events, deletion_plan, history_events
from crm_pipelines.sync.plan import TargetPlan

T0 = pd.Timestamp("2026-12-01T10:00:00Z")
ALL = {o: (True, Direction.TWO_WAY) for o in ("contact", "company", "deal")}
BOTH_ON = DeletionSettings(objects=ALL, delete_when_lead_deleted=True, delete_when_contact_deleted=True)


def _contact_world():
    # link history: (hubspot_id, other_id, deleted_crm, at)
    history = pd.DataFrame([
        ("h1", "00Q1", "salesforce", T0),   # SF Lead deleted, HubSpot contact live
        ("h2", "0031", "salesforce", T0),   # SF Contact deleted, HubSpot contact live
        ("h3", "0032", "hubspot", T0),      # HubSpot contact deleted, SF Contact live
        ("h4", "d4", "dynamics", T0),       # Dynamics contact deleted, HubSpot contact live
        ("h5", "0035", "salesforce", T0),   # SF Contact merged into 0039
        ("h6", "0036", "salesforce", T0),   # SF Contact deleted, then restored
        ("h7", "00Q7", "salesforce", T0),   # SF Lead deleted, HubSpot contact linked to another Contact now
        ("h8", "0038", "salesforce", T0),   # SF Contact deleted, HubSpot contact deleted too
    ], columns=["hubspot_id", "other_id", "deleted_crm", "at"])  # fmt: skip
    status = pd.DataFrame([
        ("hubspot", "h1", "contacts", False, None, None), ("salesforce", "00Q1", "Lead", True, T0, None),
        ("hubspot", "h2", "contacts", False, None, None), ("salesforce", "0031", "Contact", True, T0, None),
        ("hubspot", "h3", "contacts", True, T0, None), ("salesforce", "0032", "Contact", False, None, None),
        ("hubspot", "h4", "contacts", False, None, None), ("dynamics", "d4", "contact", True, T0, None),
        ("hubspot", "h5", "contacts", False, None, None), ("salesforce", "0035", "Contact", True, T0, "0039"),
        ("hubspot", "h6", "contacts", False, None, None), ("salesforce", "0036", "Contact", False, None, None),
        ("hubspot", "h7", "contacts", False, None, None), ("salesforce", "00Q7", "Lead", True, T0, None),
        ("hubspot", "h8", "contacts", True, T0, None), ("salesforce", "0038", "Contact", True, T0, None),
    ], columns=["crm", "id", "type", "deleted", "deleted_at", "merged_into"])  # fmt: skip
    links_now = pd.DataFrame([("h7", "0037", None), ("h5", "0039", None)],
                             columns=["hubspot_id", "salesforce_id", "dynamics_id"])
    return history_events("contact", history, status, links_now)


def _reasons(left_out: pd.DataFrame) -> pd.Series:
    return left_out.set_index("source_id")["reason"]


def test_del2_switches_off_by_default_keep_the_hubspot_contact():
    deletes, left_out = deletion_plan(_contact_world(), {"salesforce": DeletionSettings(objects=ALL),
                                                         "dynamics": DeletionSettings(objects=ALL)})
    assert deletes == {}
    why = _reasons(left_out)
    assert "delete_contact_when_lead_deleted" in why["00Q1"] and why["00Q1"].startswith("not deleted: DEL-2")
    assert "delete_contact_when_contact_deleted" in why["0031"]
    # a deletion whose counterpart is gone too, or whose record came back, is no deletion at all
    assert not {"0036", "0038", "h8"} & set(why.index)


def test_del2_with_the_switches_on_the_hubspot_contact_of_a_deleted_lead_or_contact_is_deleted():
    deletes, left_out = deletion_plan(_contact_world(), {"salesforce": BOTH_ON, "dynamics": BOTH_ON})
    hubspot = deletes["hubspot"].set_index("record_id")
    assert set(hubspot.index) == {"h1", "h2"}  # not h5 (merged), h6 (restored), h7 (relinked), h8 (gone)
    assert hubspot.loc["h1", "rule"] == "DEL-2 its Salesforce Lead 00Q1 was deleted"
    assert hubspot.loc["h2", ["object", "object_type", "deleted_crm", "deleted_id"]].tolist() == [
        "contact", "contact", "salesforce", "0031"]
    assert "salesforce" not in deletes  # a HubSpot contact deleted never deletes its SF record
    why = _reasons(left_out)
    assert why["h3"] == "not deleted: DEL-2 a HubSpot contact deleted keeps its Salesforce record"
    assert left_out.set_index("source_id").loc["h3", "target_crm"] == "salesforce"
    assert "merged into 0039" in why["0035"]
    assert why["00Q7"] == "not deleted: DEL-2 the HubSpot contact is linked to another live Salesforce record"


def test_del1_a_dynamics_deletion_never_deletes_in_hubspot():
    deletes, left_out = deletion_plan(_contact_world(), {"salesforce": BOTH_ON, "dynamics": BOTH_ON})
    assert "h4" not in set(deletes["hubspot"]["record_id"])
    assert _reasons(left_out)["d4"].startswith("not deleted: DEL-1")


def test_del2_only_in_a_direction_the_connection_syncs_contacts_con1():
    one_way = DeletionSettings(objects={**ALL, "contact": (True, Direction.HUBSPOT_TO_OTHER)},
                               delete_when_lead_deleted=True, delete_when_contact_deleted=True)
    deletes, left_out = deletion_plan(_contact_world(), {"salesforce": one_way})
    assert deletes == {}
    assert "(CON-1)" in _reasons(left_out)["00Q1"]


def _deal_world():
    links = pd.DataFrame([("hd1", "0061", None), ("hd2", "0062", None), ("hd3", None, "o3"), ("hd4", "0064", None)],
                         columns=["hubspot_id", "salesforce_id", "dynamics_id"])
    status = pd.DataFrame([
        ("hubspot", "hd1", "deals", False, None, None), ("salesforce", "0061", "Opportunity", True, T0, None),
        ("hubspot", "hd2", "deals", True, T0, None), ("salesforce", "0062", "Opportunity", False, None, None),
        ("hubspot", "hd3", "deals", False, None, None), ("dynamics", "o3", "opportunity", True, T0, None),
        ("hubspot", "hd4", "deals", False, None, None), ("salesforce", "0064", "Opportunity", False, None, None),
    ], columns=["crm", "id", "type", "deleted", "deleted_at", "merged_into"])  # fmt: skip
    return deal_events(links, status)


def test_del3_an_opportunity_deleted_deletes_its_hubspot_deal_not_the_other_way():
    deletes, left_out = deletion_plan(_deal_world(), {"salesforce": DeletionSettings(objects=ALL),
                                                      "dynamics": DeletionSettings(objects=ALL)})
    hubspot = deletes["hubspot"]
    assert hubspot[["object", "record_id", "deleted_id", "rule"]].values.tolist() == [
        ["deal", "hd1", "0061", "DEL-3 its Salesforce Opportunity 0061 was deleted"]]
    assert hubspot["deleted_at"].tolist() == [T0]
    assert "salesforce" not in deletes
    why = _reasons(left_out)
    assert why["hd2"] == "not deleted: DEL-3 deleting a HubSpot deal does not delete the Opportunity"
    assert why["o3"].startswith("not deleted: DEL-1")  # a Dynamics opportunity deleted keeps its HubSpot deal
    assert "0064" not in why and "hd4" not in why  # both live: nothing happened


def test_del3_not_against_the_deal_direction_or_with_deal_sync_off_con1():
    one_way = DeletionSettings(objects={**ALL, "deal": (True, Direction.HUBSPOT_TO_OTHER)})
    deletes, left_out = deletion_plan(_deal_world(), {"salesforce": one_way})
    assert deletes == {} and "(CON-1)" in _reasons(left_out)["0061"]
    deletes, left_out = deletion_plan(_deal_world(), {"salesforce": DeletionSettings(objects={})})
    assert deletes == {} and "sync is off" in _reasons(left_out)["0061"]


def test_companies_are_never_deleted_in_the_other_app():
    history = pd.DataFrame([("hc1", "0011", "salesforce", T0), ("hc2", "0012", "hubspot", T0)],
                           columns=["hubspot_id", "other_id", "deleted_crm", "at"])
    status = pd.DataFrame([
        ("hubspot", "hc1", "companies", False, None, None), ("salesforce", "0011", "Account", True, T0, None),
        ("hubspot", "hc2", "companies", True, T0, None), ("salesforce", "0012", "Account", False, None, None),
    ], columns=["crm", "id", "type", "deleted", "deleted_at", "merged_into"])  # fmt: skip
    events = history_events("company", history, status, pd.DataFrame(columns=["hubspot_id", "salesforce_id",
                                                                             "dynamics_id"]))
    deletes, left_out = deletion_plan(events, {"salesforce": BOTH_ON})
    assert deletes == {}
    assert set(_reasons(left_out)) == {"not deleted: companies are never deleted in the other app (deletions, "
                                       "companies)"}
    assert set(left_out["source_id"]) == {"0011", "hc2"}


def test_ops8_deletes_are_counted_as_writes_batched_and_kept_before_creates():
    deletes, _ = deletion_plan(_deal_world(), {"salesforce": DeletionSettings(objects=ALL)})
    plan = TargetPlan("hubspot", deletes=deletes["hubspot"])
    assert plan.counts().loc["deal", "delete"] == 1
    work = plan.work()
    assert work.values.tolist() == [["delete", "deal", "hd1"]]
    many = pd.DataFrame({"action": "delete", "object": "deal", "record_id": [f"d{i:03d}" for i in range(150)]})
    creates = pd.DataFrame({"action": "create", "object": "deal", "record_id": ["c1"]})
    assert calls_needed("hubspot", many) == 2  # batch archive: 100 ids a call
    kept, deferred = fit_budget("hubspot", pd.concat([creates, many], ignore_index=True), calls_left=2)
    assert set(kept["action"]) == {"delete"} and deferred["record_id"].tolist() == ["c1"]


def test_del4_a_company_whose_counterpart_was_deleted_is_not_created_again_unless_it_changed_since():
    companies = pd.DataFrame([("hubspot:hc1", "hc1", None, None, "one.com"),    # its Account was deleted
                              ("hubspot:hc2", "hc2", None, None, "two.com"),    # likewise, edited since
                              ("salesforce:0013", None, "0013", None, "three.com")],  # its company was deleted
                             columns=["identity_id", "hubspot_id", "salesforce_id", "dynamics_id", "domain"])
    history = pd.DataFrame([("hc1", "0011", "salesforce", T0), ("hc2", "0012", "salesforce", T0),
                            ("hc3", "0013", "hubspot", T0)], columns=["hubspot_id", "other_id", "deleted_crm", "at"])
    later = T0 + pd.Timedelta(minutes=5)
    status = pd.DataFrame([
        ("hubspot", "hc1", "companies", False, None, T0, None), ("salesforce", "0011", "Account", True, T0, T0, None),
        ("hubspot", "hc2", "companies", False, None, later, None),
        ("salesforce", "0012", "Account", True, T0, T0, None),
        ("hubspot", "hc3", "companies", True, T0, T0, None), ("salesforce", "0013", "Account", False, None, T0, None),
    ], columns=["crm", "id", "type", "deleted", "deleted_at", "modified_at", "merged_into"])  # fmt: skip
    events = history_events("company", history, status, pd.DataFrame(columns=["hubspot_id", "salesforce_id",
                                                                             "dynamics_id"]))
    creates, left_out = company_creates(
        companies, pd.DataFrame(columns=["hubspot_id", "qualifies", "reason"]), pd.DataFrame(
            columns=["contact_identity", "company_identity", "crm"]),
        pd.DataFrame(columns=["identity_id", "hubspot_id", "salesforce_id", "dynamics_id"]),
        {"salesforce": CompanyCreateSettings(requested=("hc1", "hc2"))}, deleted=events)
    assert set(creates["salesforce"]["source_id"]) == {"hc2"}  # changed after the deletion: created again
    assert creates["hubspot"].empty
    why = left_out.set_index("source_id")["reason"]
    assert why["hc1"] == "DEL-4 deleted in salesforce, unchanged since"
    assert why["0013"] == "DEL-4 deleted in hubspot, unchanged since"


def test_del4_a_deleted_deal_keeps_its_link_and_is_never_created_again():
    # hd1: HubSpot deal deleted, its Opportunity live; 0062: Opportunity deleted, its HubSpot deal live
    deals = pd.DataFrame([("hubspot:hd1", "hd1", "0061", None, True), ("hubspot:hd2", "hd2", "0062", None, True)],
                         columns=["identity_id", "hubspot_id", "salesforce_id", "dynamics_id", "linked"])
    facts = pd.DataFrame({"deal_id": ["hd2"], "pipeline": ["default"], "dealstage": ["closedwon"]})
    stages = pd.DataFrame(columns=["crm", "id", "pipeline", "stage", "status", "closed_mismatch"])
    made, left, findings = deal_creates(deals, stages, facts, {"salesforce": DealCreateSettings(),
                                                               "dynamics": DealCreateSettings()})
    assert all(m.empty for m in made.values())
    # the deleted HubSpot deal is not sent to Dynamics either, and is not reported as an unmapped stage
    assert left.set_index(["source_id", "target_crm"]).loc[("hd1", "dynamics"), "reason"] == "DEL-4 deleted in hubspot"
    assert "hd1" not in set(findings["id"])

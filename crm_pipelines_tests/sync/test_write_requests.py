"""A plan's writes as requests (issue 13, ``sync/write_requests.py``) and the outbox's retry schedule (OPS-6):
one request per record, keyed so that the same write asked for twice is one write and a new value is another,
values not written left out (OPS-9), owners as the target's users, baselines named by the link."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from crm_pipelines.state.outbox import retry_after
from crm_pipelines.sync.pipeline_writes import pipeline_work, stage_ids
from crm_pipelines.sync.write_requests import association_requests, create_requests, target_owners, update_requests

CREATES = pd.DataFrame({"object": ["contact"], "identity_id": ["email:a@x.org"], "source_crm": ["hubspot"],
                        "source_id": ["101"]})  # fmt: skip
VALUES = pd.DataFrame({
    "source_id": ["101", "101", "101"], "target_object": ["Lead"] * 3,
    "field": ["email", "lastname", "company"], "target_field": ["Email", "LastName", "Company"],
    "value": ["a@x.org", "Ames", "x" * 300], "api_value": ["a@x.org", "Ames", None],  # the company too long
})  # fmt: skip
UPDATES = pd.DataFrame({
    "kind": ["contact", "contact"], "record_id": ["00Q1", "00Q1"], "hubspot_id": ["101", "101"],
    "source_crm": ["hubspot", "hubspot"], "field": ["firstname", "phone"], "old": ["Al", None],
    "new": ["Bo", "+1 555"], "target_field": ["FirstName", "Phone"], "api_value": ["Bo", "+1 555"],
})  # fmt: skip


def test_ops9_conf5_a_create_carries_its_written_values_and_how_it_is_found_again() -> None:
    made, _ = create_requests("salesforce", CREATES, VALUES, {"Lead": "Email"})
    row = made.iloc[0]
    assert len(made) == 1 and row["operation"] == "create" and row["object"] == "Lead"
    assert row["payload"] == {"Email": "a@x.org", "LastName": "Ames"}  # OPS-9: text too long is not written
    assert (row["lookup_field"], row["lookup_value"]) == ("Email", "a@x.org")
    # CONF-5: the baselines it sets, under the HubSpot record it was created from
    assert row["confirm"]["hubspot_id"] == "101" and row["confirm"]["other_crm"] == "salesforce"
    # the same create asked for again (before an extract read it back) is the same write
    again, _ = create_requests("salesforce", CREATES, VALUES.iloc[::-1], {"Lead": "Email"})
    assert again["key"].tolist() == [row["key"]]


def test_a_create_in_hubspot_learns_its_link_from_the_answer() -> None:
    made, _ = create_requests("hubspot", CREATES.assign(source_crm="salesforce", source_id="00Q9"),
                              VALUES.assign(source_id="00Q9", target_object="contacts"), {"contacts": "email"})
    assert made.iloc[0]["confirm"]["hubspot_id"] is None and made.iloc[0]["confirm"]["other_crm"] == "salesforce"


def test_a_record_s_updates_are_one_write_keyed_by_what_changes() -> None:
    made = update_requests("salesforce", UPDATES, pd.Series(["Lead", "Lead"]))
    assert len(made) == 1 and made.iloc[0]["payload"] == {"FirstName": "Bo", "Phone": "+1 555"}
    assert {b["field"] for b in made.iloc[0]["confirm"]["baselines"]} == {"firstname", "phone"}
    again = update_requests("salesforce", UPDATES.iloc[::-1], pd.Series(["Lead", "Lead"]))
    assert again.iloc[0]["key"] == made.iloc[0]["key"]
    later = update_requests("salesforce", UPDATES.assign(old="Bo", new="Al", api_value="Al").iloc[:1],
                            pd.Series(["Lead"]))
    assert later.iloc[0]["key"] != made.iloc[0]["key"]  # a later change of the same field is a new write


def test_owners_are_written_as_the_target_s_users() -> None:
    owners = pd.DataFrame({"email": ["o@x.org", "p@x.org"], "hubspot_owner_id": ["7001", "7002"],
                           "salesforce_id": ["005A", None], "dynamics_id": ["9f0e", "9f0f"]})  # fmt: skip
    values = pd.DataFrame({"field": ["hubspot_owner_id", "hubspot_owner_id", "lastname"],
                           "target_field": ["OwnerId", "OwnerId", "LastName"], "api_value": ["7001", "7002", "Ames"]})
    sf = target_owners(values, "salesforce", owners)
    assert sf["api_value"].tolist() == ["005A", None, "Ames"]  # an owner with no Salesforce user is not written
    dyn = target_owners(values.assign(target_field=["_ownerid_value", "_ownerid_value", "lastname"]), "dynamics",
                        owners)
    assert dyn["target_field"].tolist()[:2] == ["ownerid@odata.bind"] * 2
    assert dyn["api_value"].tolist()[:2] == ["/systemusers(9f0e)", "/systemusers(9f0f)"]
    assert target_owners(values, "hubspot", owners).equals(values)  # HubSpot's own owner ids


def test_ops6_a_refused_write_backs_off_to_once_a_day() -> None:
    assert [retry_after(n) for n in (1, 2, 3)] == [timedelta(minutes=5), timedelta(minutes=10),
                                                   timedelta(minutes=20)]
    assert retry_after(20) == timedelta(hours=24)


DEALS = pd.DataFrame({"object": ["deal", "deal"], "identity_id": ["salesforce:006A", "salesforce:006B"],
                      "source_crm": ["salesforce"] * 2, "source_id": ["006A", "006B"],
                      "pipeline": ["default", "Salesforce - 012X"], "stage": ["appointmentscheduled", "Won It"],
                      "detail": ["", "DEAL-3 new pipeline"]})  # fmt: skip
DEAL_VALUES = pd.DataFrame({"source_id": ["006A", "006B"], "target_object": ["deals"] * 2, "field": ["dealname"] * 2,
                            "target_field": ["dealname"] * 2, "value": ["A", "B"], "api_value": ["A", "B"]})


def test_deal3_a_deal_into_a_new_pipeline_waits_for_it_then_is_written_by_its_ids() -> None:
    keyed = frozenset({"deals"})
    made, waiting = create_requests("hubspot", DEALS, DEAL_VALUES, {"deals": "crm_pipelines_key"}, keyed=keyed)
    assert made["ref"].tolist() == ["salesforce:006A"] and waiting["source_id"].tolist() == ["006B"]
    # the sync's key goes with the create: it is found again by it after a crash (Invariant 1)
    assert made.iloc[0]["payload"] == {"dealname": "A", "pipeline": "default", "dealstage": "appointmentscheduled",
                                       "crm_pipelines_key": "salesforce:006A"}  # fmt: skip
    assert made.iloc[0]["lookup_value"] == "salesforce:006A"
    assert made.iloc[0]["confirm"]["other_type"] == "Opportunity"
    ids = stage_ids([{"id": "81", "label": "Salesforce - 012X", "stages": [{"id": "81-1", "label": "Won It"}]}])
    made, waiting = create_requests("hubspot", DEALS, DEAL_VALUES, {"deals": "crm_pipelines_key"}, keyed=keyed,
                                    hubspot_stages=ids)
    assert waiting.empty and made.iloc[1]["payload"]["pipeline"] == "81"
    assert made.iloc[1]["payload"]["dealstage"] == "81-1"


def test_deal2_a_deal_to_salesforce_carries_its_stage_and_record_type() -> None:
    hs = DEALS.assign(source_crm="hubspot", source_id=["11", "12"], pipeline=["standard", "012X"],
                      stage=["Prospecting", "Closed Won"], detail="")
    made, _ = create_requests("salesforce", hs, DEAL_VALUES.assign(source_id=["11", "12"],
                              target_object="Opportunity", target_field="Name"), {"Opportunity": "External_Id__c"},
                              keyed=frozenset({"Opportunity"}))  # fmt: skip
    assert made.iloc[0]["payload"] == {"Name": "A", "StageName": "Prospecting", "External_Id__c": "hubspot:11"}
    assert made.iloc[1]["payload"]["RecordTypeId"] == "012X"


def test_deal3_deal4_pipelines_are_created_once_with_closed_stages_as_salesforce_has_them() -> None:
    deals = pd.DataFrame({"pipeline": ["Salesforce - 012X"] * 3 + ["Salesforce - 012Y"],
                          "stage": ["Open One", "Won It", "Lost It", "Open One"],
                          "is_closed": [False, True, True, False], "is_won": [False, True, False, False]})
    existing = [{"id": "90", "label": "Salesforce - 012Y", "stages": [{"id": "90-1", "label": "Other"}]}]
    work = pipeline_work(deals, existing, {"Open One": 0.2})
    assert list(work.create) == ["Salesforce - 012X"] and work.calls == 2
    stages = {s["label"]: s["metadata"] for s in work.create["Salesforce - 012X"]}
    assert stages == {"Open One": {"isClosed": "false", "probability": "0.2"},
                      "Won It": {"isClosed": "true", "probability": "1.0"},
                      "Lost It": {"isClosed": "true", "probability": "0.0"}}
    assert [s["label"] for s in work.add["90"]] == ["Open One"]  # the stage the existing pipeline lacks
    done = pipeline_work(deals, [*existing, {"id": "91", "label": "Salesforce - 012X", "stages": [
        {"id": f"91-{i}", "label": s} for i, s in enumerate(stages)]}], {})
    assert "Salesforce - 012X" not in done.create and "91" not in done.add


def test_deal6_associations_are_written_as_each_api_holds_them() -> None:
    rows = pd.DataFrame({"object": ["deal_contact", "contact_company", "deal_contact"],
                         "from_id": ["006A", "003C", "7a"], "to_id": ["003C", "001A", "9b"],
                         "via": ["OpportunityContactRole", "Contact.AccountId", "opportunity.parentcontactid"]})
    sf = association_requests("salesforce", rows.iloc[:2])
    assert sf["object"].tolist() == ["OpportunityContactRole", "Contact"]
    assert sf.iloc[0]["payload"] == {"OpportunityId": "006A", "ContactId": "003C"}
    assert sf.iloc[1]["payload"] == {"AccountId": "001A"} and sf.iloc[1]["ref"] == "003C"
    dyn = association_requests("dynamics", rows.iloc[2:])
    assert dyn.iloc[0]["payload"] == {"parentcontactid@odata.bind": "/contacts(9b)"}
    hs = association_requests("hubspot", rows.assign(via="association"))
    assert hs["object"].tolist() == ["deals>contacts", "contacts>companies", "deals>contacts"]
    assert len(set(hs["key"])) == 3 and set(hs["operation"]) == {"associate"}


def test_deal2_a_linked_deal_s_stage_is_written_in_each_api_s_fields() -> None:
    stage = UPDATES.iloc[:1].assign(kind="deal", field="pipeline_stage", old="default:appointmentscheduled",
                                    new="default:closedwon", target_field=None, api_value=None)
    hs = update_requests("hubspot", stage, pd.Series(["deals"]))
    assert hs.iloc[0]["payload"] == {"pipeline": "default", "dealstage": "closedwon"}
    sf = update_requests("salesforce", stage.assign(new="012A:Closed Won"), pd.Series(["Opportunity"]))
    assert sf.iloc[0]["payload"] == {"StageName": "Closed Won"}
    # a Dataverse opportunity is closed by its own action, not by a value this update writes
    closing = update_requests("dynamics", stage.assign(new="standard:Won"), pd.Series(["opportunities"]))
    assert closing["operation"].tolist() == ["close"]


def test_deal4_a_dataverse_opportunity_is_closed_by_its_action_with_the_stage_baseline_in_hubspot_terms() -> None:
    stage = UPDATES.iloc[:1].assign(kind="deal", field="pipeline_stage", old="default:appointmentscheduled",
                                    new="standard:Won", target_field=None, api_value=None, hubspot_id="31")
    made = update_requests("dynamics", stage, pd.Series(["opportunities"]), {"31": "default:closedwon"})
    assert made["operation"].tolist() == ["close"] and made.iloc[0]["payload"] == {"won": True}
    # CONF-5: the baseline is what the merge compares: HubSpot's stage, not Dataverse's name for it
    assert made.iloc[0]["confirm"]["baselines"][0]["value"] == "default:closedwon"
    deal = DEALS.iloc[:1].assign(source_crm="hubspot", source_id="31", pipeline="standard", stage="Lost", detail="")
    created, _ = create_requests("dynamics", deal, DEAL_VALUES.iloc[:1].assign(
        source_id="31", target_object="opportunities", target_field="name"), {}, hubspot_deal_stages={
        "31": "default:closedlost"})  # fmt: skip
    row = created.iloc[0]
    assert row["payload"]["salesstage"] == 3 and row["confirm"]["close"] is False  # created at its last step
    assert {"field": "pipeline_stage", "value": "default:closedlost"} in row["confirm"]["baselines"]


def test_an_update_whose_api_object_is_unknown_is_not_sent():
    # OPS-6: an update the target has no API object for (None: update_objects could not place it) makes no
    # request, rather than one to an object named "None" that the CRM can only refuse
    updates = pd.DataFrame([
        {"kind": "contact", "record_id": "003A", "hubspot_id": "h1", "source_crm": "salesforce", "field": "phone",
         "old": "1", "new": "2", "target_field": "Phone", "api_value": "2"},
        {"kind": "contact", "record_id": "003B", "hubspot_id": "h2", "source_crm": "salesforce", "field": "phone",
         "old": "1", "new": "3", "target_field": "Phone", "api_value": "3"},
    ])  # fmt: skip
    out = update_requests("salesforce", updates, pd.Series(["Contact", None]))
    assert out["ref"].tolist() == ["003A"] and out["object"].tolist() == ["Contact"]

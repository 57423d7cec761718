"""A plan's writes as requests (issue 13, ``sync/write_requests.py``) and the outbox's retry schedule (OPS-6):
one request per record, keyed so that the same write asked for twice is one write and a new value is another,
values not written left out (OPS-9), owners as the target's users, baselines named by the link."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from crm_pipelines.state.outbox import retry_after
from crm_pipelines.sync.write_requests import create_requests, target_owners, update_requests

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
    made = create_requests("salesforce", CREATES, VALUES, {"Lead": "Email"})
    row = made.iloc[0]
    assert len(made) == 1 and row["operation"] == "create" and row["object"] == "Lead"
    assert row["payload"] == {"Email": "a@x.org", "LastName": "Ames"}  # OPS-9: text too long is not written
    assert (row["lookup_field"], row["lookup_value"]) == ("Email", "a@x.org")
    # CONF-5: the baselines it sets, under the HubSpot record it was created from
    assert row["confirm"]["hubspot_id"] == "101" and row["confirm"]["other_crm"] == "salesforce"
    # the same create asked for again (before an extract read it back) is the same write
    assert create_requests("salesforce", CREATES, VALUES.iloc[::-1], {"Lead": "Email"})["key"].tolist() == [row["key"]]


def test_a_create_in_hubspot_learns_its_link_from_the_answer() -> None:
    made = create_requests("hubspot", CREATES.assign(source_crm="salesforce", source_id="00Q9"),
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

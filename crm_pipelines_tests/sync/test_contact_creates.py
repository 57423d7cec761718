"""Which contacts a plan creates in which CRM, and why the others are left out (``sync/contact_creates.py``):
CON-1, CON-3, CON-5, CON-6, CON-7, CON-8, DEL-4, one identity created once in HubSpot."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction, Filter
from crm_pipelines.sync.contact_creates import ContactCreateSettings, contact_creates

T0 = pd.Timestamp("2026-12-01T10:00:00Z")
IDS = ("identity_id", "email", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type")


def _world():
    identities = pd.DataFrame([
        ("email:a@x.com", "a@x.com", "h1", None, None, None, None),          # HubSpot only, valid email
        ("hubspot:h2", None, "h2", None, None, None, None),                  # HubSpot only, no valid email
        ("email:c@x.com", "c@x.com", "h3", "003C", "Contact", "d3", "contact"),  # everywhere
        ("email:d@x.com", "d@x.com", None, "00QD", "Lead", "d4", "contact"),  # SF Lead + Dynamics, not HubSpot
        ("email:e@x.com", "e@x.com", None, None, None, "d5", "contact"),      # Dynamics only
        ("email:f@x.com", "f@x.com", "h6", None, None, "d6", "contact"),      # HubSpot + Dynamics
    ], columns=list(IDS))  # fmt: skip
    members = pd.DataFrame([
        ("hubspot", "contact", "h1", True, T0), ("hubspot", "contact", "h2", False, T0),
        ("hubspot", "contact", "h3", True, T0), ("salesforce", "Contact", "003C", True, T0),
        ("dynamics", "contact", "d3", True, T0), ("salesforce", "Lead", "00QD", True, T0),
        ("dynamics", "contact", "d4", True, T0), ("dynamics", "contact", "d5", True, T0),
        ("hubspot", "contact", "h6", True, T0), ("dynamics", "contact", "d6", True, T0),
    ], columns=["crm", "type", "id", "email_valid", "modified_at"])  # fmt: skip
    hubspot = pd.DataFrame({"id": ["h1", "h2", "h3", "h6"], "lifecyclestage": ["lead", "lead", "customer", "other"]})
    return identities, members, hubspot


def _ids(frame: pd.DataFrame) -> set:
    return set(frame["source_id"])


def test_con5_hubspot_contacts_missing_elsewhere_are_created_as_the_set_type_and_con3_needs_a_valid_email():
    identities, members, hubspot = _world()
    creates, left_out = contact_creates(identities, members, hubspot, {
        "salesforce": ContactCreateSettings(new_type="Contact"), "dynamics": ContactCreateSettings(new_type="contact")})
    assert _ids(creates["salesforce"]) == {"h1", "h6"} and set(creates["salesforce"]["object_type"]) == {"Contact"}
    assert _ids(creates["dynamics"]) == {"h1"}
    why = left_out.set_index(["source_id", "target_crm"])["reason"]
    assert why[("h2", "salesforce")] == "CON-3 no valid email" and why[("h2", "dynamics")] == "CON-3 no valid email"
    # CON-3 off: the contact without a valid email is created too
    creates, _ = contact_creates(identities, members, hubspot,
                                 {"salesforce": ContactCreateSettings(valid_email_only=False)})
    assert "h2" in _ids(creates["salesforce"]) and set(creates["salesforce"]["object_type"]) == {"Lead"}


def test_records_missing_in_hubspot_are_created_there_once_per_identity():
    identities, members, hubspot = _world()
    creates, _ = contact_creates(identities, members, hubspot,
                                 {"salesforce": ContactCreateSettings(), "dynamics": ContactCreateSettings()})
    to_hubspot = creates["hubspot"]
    assert sorted(to_hubspot["identity_id"]) == ["email:d@x.com", "email:e@x.com"]  # d: once, not twice
    assert to_hubspot.set_index("identity_id").loc["email:d@x.com", "source_crm"] == "salesforce"


def test_con6_a_switch_per_salesforce_record_type_creates_hubspot_contacts():
    identities, members, hubspot = _world()
    creates, left_out = contact_creates(identities, members, hubspot, {
        "salesforce": ContactCreateSettings(create_from={"Lead": False, "Contact": True}),
        "dynamics": ContactCreateSettings(direction=Direction.HUBSPOT_TO_OTHER)})
    assert creates["hubspot"].empty
    assert "CON-6" in left_out.set_index("source_id").loc["00QD", "reason"]


def test_con1_direction_and_the_object_switch():
    identities, members, hubspot = _world()
    creates, _ = contact_creates(identities, members, hubspot, {
        "salesforce": ContactCreateSettings(direction=Direction.OTHER_TO_HUBSPOT),
        "dynamics": ContactCreateSettings(enabled=False)})
    assert creates["salesforce"].empty and creates["dynamics"].empty
    assert _ids(creates["hubspot"]) == {"00QD"}  # Salesforce -> HubSpot still runs; Dynamics is off


def test_con7_only_contacts_on_the_inclusion_list_go_to_salesforce():
    identities, members, hubspot = _world()
    creates, left_out = contact_creates(identities, members, hubspot,
                                        {"salesforce": ContactCreateSettings(inclusion=("F@X.com",))})
    assert _ids(creates["salesforce"]) == {"h6"}  # listed by email, any case
    assert left_out.set_index(["source_id", "target_crm"]).loc[("h1", "salesforce"), "reason"] == \
        "CON-7 not on the inclusion list"


def test_con8_filters_on_hubspot_properties():
    identities, members, hubspot = _world()
    rules = ContactCreateSettings(filters=(Filter(property="lifecyclestage", operator="in", values=["Lead"]),))
    creates, left_out = contact_creates(identities, members, hubspot, {"salesforce": rules})
    assert _ids(creates["salesforce"]) == {"h1"}
    assert left_out.set_index(["source_id", "target_crm"]).loc[("h6", "salesforce"), "reason"] == "CON-8 filtered out"


def test_del4_a_deleted_record_is_not_created_again_unless_it_changed_since():
    identities, members, hubspot = _world()
    deletions = pd.DataFrame([
        ("h1", "003OLD", "salesforce", T0 + pd.Timedelta(hours=1)),  # h1's Contact deleted after h1 changed
        ("h6", "003OLD6", "salesforce", T0 - pd.Timedelta(hours=1)),  # h6 changed after its Contact's deletion
        ("hgone", "d5", "hubspot", T0 + pd.Timedelta(hours=1)),  # d5's HubSpot contact deleted
    ], columns=["hubspot_id", "other_id", "deleted_crm", "at"])  # fmt: skip
    creates, left_out = contact_creates(identities, members, hubspot,
                                        {"salesforce": ContactCreateSettings(), "dynamics": ContactCreateSettings()},
                                        deletions)
    assert _ids(creates["salesforce"]) == {"h6"}
    assert "d5" not in _ids(creates["hubspot"])
    reasons = set(left_out["reason"])
    assert {"DEL-4 deleted in salesforce, unchanged since", "DEL-4 deleted in hubspot, unchanged since"} <= reasons

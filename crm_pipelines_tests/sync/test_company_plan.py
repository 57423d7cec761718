"""Which companies a plan creates in which CRM, and the lifecycle it carries to them
(``sync/company_plan.py``): COM-1, COM-2, COM-3, COM-4."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.company_plan import CompanyCreateSettings, company_creates, lifecycle_updates
from crm_pipelines.transform.companies import account_creation_candidates

T0 = pd.Timestamp("2026-06-01T00:00:00Z")
CONTACTS = pd.DataFrame([
    # identity, email, hubspot, salesforce, type, dynamics
    ("email:a@x.com", "a@x.com", "h1", "003A", "Contact", "dA"),
    ("email:b@x.com", "b@x.com", "h2", "00QB", "Lead", None),
    ("email:c@x.com", "c@x.com", "h3", None, None, None),
    ("email:d@x.com", "d@x.com", None, "003D", "Contact", None),
], columns=["identity_id", "email", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id"]).astype(object)
COMPANIES = pd.DataFrame([
    # identity, hubspot, salesforce, dynamics, domain
    ("hubspot:c1", "c1", None, None, "one.com"),     # contact h1: syncs as an SF Contact, is in Dynamics
    ("hubspot:c2", "c2", None, None, "two.com"),     # contact h2: syncs as an SF Lead only
    ("hubspot:c3", "c3", None, None, "three.com"),   # no contacts
    ("hubspot:c4", "c4", "001X", "dX", "four.com"),  # linked everywhere
    ("salesforce:001N", None, "001N", None, "new.com"),    # Account modified after company sync went on
    ("salesforce:001O", None, "001O", None, "old.com"),    # pre-existing, no syncing contact
    ("salesforce:001P", None, "001P", None, "pre.com"),    # pre-existing, associated with contact d (in SF only)
    ("salesforce:001Q", None, "001Q", None, "imp.com"),    # pre-existing, imported
    ("dynamics:dN", None, None, "dN", "new.com"),          # the same domain as 001N
], columns=["identity_id", "hubspot_id", "salesforce_id", "dynamics_id", "domain"]).astype(object)
PAIRS = pd.DataFrame([
    ("email:a@x.com", "hubspot:c1", "hubspot"), ("email:b@x.com", "hubspot:c2", "hubspot"),
    ("email:d@x.com", "salesforce:001P", "salesforce"), ("email:a@x.com", "salesforce:001N", "salesforce"),
], columns=["contact_identity", "company_identity", "crm"])
DAY = pd.Timedelta(days=1)
MODIFIED = pd.DataFrame([("salesforce", "001N", T0 + 3 * DAY), ("salesforce", "001O", T0 - 90 * DAY),
                         ("salesforce", "001P", T0 - 90 * DAY), ("salesforce", "001Q", T0 - 9 * DAY),
                         ("dynamics", "dN", T0)], columns=["crm", "id", "modified_at"])  # fmt: skip


def _candidates(new_contact_type: str = "Contact") -> pd.DataFrame:
    """The transform's COM-2 table for these records (as ``unified`` stores it)."""
    record_pairs = pd.DataFrame({"crm": "hubspot", "company_id": ["c1", "c2"], "contact_id": ["h1", "h2"]})
    members = pd.DataFrame({"crm": "hubspot", "id": ["h1", "h2", "h3"], "identity_id": CONTACTS["identity_id"][:3],
                            "email_valid": True})
    return account_creation_candidates(COMPANIES, record_pairs, CONTACTS, members,
                                       new_contact_type)


def _plan(sf: CompanyCreateSettings | None = None, dy: CompanyCreateSettings | None = None, **kw):
    connections = {"salesforce": sf or CompanyCreateSettings(), "dynamics": dy or CompanyCreateSettings()}
    return company_creates(COMPANIES, kw.pop("candidates", _candidates()), PAIRS, CONTACTS, connections,
                           modified=MODIFIED, **kw)


def test_com_1_accounts_sync_as_hubspot_companies_under_the_switch_per_connection():
    """COM-1: Accounts (and Dynamics accounts) without a HubSpot company are created in HubSpot; switching
    company sync off for a connection stops its creates both ways, the other connection's go on."""
    creates, _ = _plan()
    assert {"001N", "001O", "001P", "001Q"} <= set(creates["hubspot"]["source_id"])
    assert set(creates["hubspot"]["object"]) == {"company"}
    creates, _ = _plan(sf=CompanyCreateSettings(enabled=False))
    assert not (creates["hubspot"]["source_crm"] == "salesforce").any() and creates["salesforce"].empty
    assert "dN" in set(creates["hubspot"]["source_id"]) and len(creates["dynamics"]) > 0
    creates, _ = _plan(sf=CompanyCreateSettings(direction=Direction.HUBSPOT_TO_OTHER))
    assert not (creates["hubspot"]["source_crm"] == "salesforce").any() and len(creates["salesforce"]) > 0


def test_com_2_an_account_is_created_only_for_a_company_with_a_syncing_contact_or_on_request():
    """COM-2: a HubSpot company becomes an Account only when associated with a contact that syncs as an SF
    Contact; not without contacts, not when its contacts sync as Leads; a request creates it anyway."""
    creates, left_out = _plan()
    assert set(creates["salesforce"]["source_id"]) == {"c1"}
    assert set(creates["salesforce"]["object_type"]) == {"Account"}
    why = left_out[left_out["target_crm"] == "salesforce"].set_index("source_id")["reason"]
    assert why["c2"] == "COM-2 all contacts are leads" and why["c3"] == "COM-2 no contacts"
    creates, _ = _plan(sf=CompanyCreateSettings(requested=("c3",)))
    assert set(creates["salesforce"]["source_id"]) == {"c1", "c3"}
    # new records created as Leads: no company has a contact syncing as a Contact... but h1 is a Contact already
    creates, _ = _plan(candidates=_candidates("Lead"))
    assert set(creates["salesforce"]["source_id"]) == {"c1"}
    # Dynamics: c1's contact is in Dynamics; c2's contact is not, unless the plan creates it there
    creates, left_out = _plan()
    assert set(creates["dynamics"]["source_id"]) == {"c1"}
    creates, _ = _plan(planned_contacts={"dynamics": pd.Series(["email:b@x.com"])})
    assert set(creates["dynamics"]["source_id"]) == {"c1", "c2"}


def test_com_3_pre_existing_accounts_sync_only_when_imported_or_associated():
    """COM-3: with company sync switched on at ``enabled_since``, an Account not modified since is created
    in HubSpot only when imported or associated with a contact syncing with HubSpot; one company per domain."""
    creates, left_out = _plan(sf=CompanyCreateSettings(enabled_since=T0, import_ids=("001Q",)))
    made = set(creates["hubspot"]["source_id"])
    assert {"001N", "001Q"} <= made and "001O" not in made
    # 001P's contact d is only in Salesforce: not a contact syncing with HubSpot yet ...
    assert "001P" not in made
    why = left_out[left_out["target_crm"] == "hubspot"].set_index("source_id")["reason"]
    assert why["001O"].startswith("COM-3") and why["001P"].startswith("COM-3")
    # ... until the plan creates it in HubSpot
    creates, _ = _plan(sf=CompanyCreateSettings(enabled_since=T0),
                       planned_contacts={"hubspot": pd.Series(["email:d@x.com"])})
    assert "001P" in set(creates["hubspot"]["source_id"])
    # the Dynamics account with 001N's domain is not created a second time
    assert "dN" not in made and "one HubSpot company per domain: created from 001N" in set(why)
    # without enabled_since every Account counts as new
    creates, _ = _plan()
    assert {"001O", "001P"} <= set(creates["hubspot"]["source_id"])


def test_com_4_a_contacts_lifecycle_stage_is_carried_to_its_company():
    """COM-4: a HubSpot company takes the furthest stage of its contacts after the contact rules, never
    going backwards."""
    contact_stages = pd.DataFrame({"id": ["h1", "h2"], "new_stage": ["customer", "lead"]})
    company_stages = pd.DataFrame({"id": ["c1", "c2"], "lifecyclestage": ["lead", "opportunity"]})
    updates = lifecycle_updates(contact_stages, company_stages, PAIRS, CONTACTS, COMPANIES)
    assert updates[["record_id", "field", "old", "new"]].values.tolist() == [["c1", "lifecyclestage", "lead",
                                                                              "customer"]]
    assert updates["decided_by"].iloc[0].startswith("COM-4") and set(updates["kind"]) == {"company"}

"""The associations a plan makes in each CRM (``sync/association_plan.py``): DEAL-6, and what a plan's
associations cost in API calls (OPS-8)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.association_plan import association_changes
from crm_pipelines.sync.calls import calls_needed
from crm_pipelines.sync.plan import TargetPlan

CONTACTS = pd.DataFrame({
    "identity_id": ["e:a", "e:b", "e:c"], "hubspot_id": ["h1", "h2", None],
    "salesforce_id": ["003A", "00QB", "003C"], "salesforce_type": ["Contact", "Lead", "Contact"],
    "dynamics_id": ["dA", None, None], "dynamics_type": ["contact", None, None],
}).astype(object)
COMPANIES = pd.DataFrame({"identity_id": ["hubspot:c1", "hubspot:c2"], "hubspot_id": ["c1", "c2"],
                          "salesforce_id": ["001X", "001Y"], "dynamics_id": ["dX", None]}).astype(object)
DEALS = pd.DataFrame({"identity_id": ["hubspot:d1"], "hubspot_id": ["d1"], "salesforce_id": ["006A"],
                      "dynamics_id": [None], "linked": True}).astype(object)
PAIRS = {
    "contact_company": pd.DataFrame([
        ("e:a", "hubspot:c1", "hubspot"), ("e:a", "hubspot:c2", "hubspot"),  # HubSpot: a with two companies
        ("e:b", "hubspot:c1", "hubspot"),                                     # b is a Lead in Salesforce
        ("e:c", "hubspot:c2", "salesforce"),                                  # only Salesforce: c not in HubSpot
    ], columns=["contact_identity", "company_identity", "crm"]),
    "deal_contact": pd.DataFrame([
        ("hubspot:d1", "e:a", "hubspot"), ("hubspot:d1", "e:b", "hubspot"),
        ("hubspot:d1", "e:a", "salesforce"),                                  # already an OpportunityContactRole
    ], columns=["deal_identity", "contact_identity", "crm"]),
    "deal_company": pd.DataFrame([("hubspot:d1", "hubspot:c2", "salesforce")],
                                 columns=["deal_identity", "company_identity", "crm"]),
}
IDENTITIES = {"contact": CONTACTS, "company": COMPANIES, "deal": DEALS}
ON = {"contact": (True, Direction.TWO_WAY), "company": (True, Direction.TWO_WAY), "deal": (True, Direction.TWO_WAY)}


def _changes(target: str, syncing=None):
    return association_changes(target, PAIRS, IDENTITIES, syncing or {"salesforce": ON, "dynamics": ON})


def test_deal_6_associations_are_carried_between_linked_identities_only_where_the_target_lacks_them():
    """DEAL-6: HubSpot's deal->contact becomes an OpportunityContactRole (not for a Lead, not twice), its
    contact->company the Contact's AccountId (one, where the Contact has none); Salesforce's deal->company
    (Opportunity.AccountId) becomes a HubSpot association; Dynamics gets lookups; nothing between records
    the target does not hold, and only over connections whose objects sync."""
    made, left_out = _changes("salesforce")
    rows = set(map(tuple, made[["object", "from_id", "to_id", "via", "action"]].values.tolist()))
    assert rows == {("contact_company", "003A", "001X", "Contact.AccountId", "update")}  # the lowest of two
    assert ("deal_contact", "006A", "00QB") not in {r[:3] for r in rows}
    why = set(left_out["reason"])
    assert "DEAL-6 a Salesforce Lead has no contact role" in why
    assert "DEAL-6 this record type holds no such association in salesforce" in why  # the Lead's company

    made, _ = _changes("hubspot")
    assert made[["object", "from_id", "to_id", "via"]].values.tolist() == [["deal_company", "d1", "c2",
                                                                           "association"]]
    made, left_out = _changes("dynamics")
    assert made[["object", "from_id", "to_id", "via"]].values.tolist() == [
        ["contact_company", "dA", "dX", "contact.parentcustomerid"]]
    # c2, e:b and d1 are not in Dynamics: no association with them, and no left-out row per pair either (each
    # record's own row, its create or why it is not created, says what happens; DEAL-6)
    assert left_out.empty

    # the record already holds a company in Salesforce: the lookup is not overwritten
    held = dict(PAIRS, contact_company=pd.concat([PAIRS["contact_company"], pd.DataFrame(
        [("e:a", "hubspot:c2", "salesforce")], columns=["contact_identity", "company_identity", "crm"])]))
    made, left_out = association_changes("salesforce", held, IDENTITIES, {"salesforce": ON})
    assert made.empty and "DEAL-6 the salesforce record holds another" in set(left_out["reason"])
    # company sync off: no contact->company; one-way other -> HubSpot: nothing to Salesforce
    made, _ = _changes("salesforce", {"salesforce": ON | {"company": (False, Direction.TWO_WAY)}})
    assert made.empty
    made, _ = _changes("salesforce", {"salesforce": ON | {"contact": (True, Direction.OTHER_TO_HUBSPOT)}})
    assert made.empty


def test_ops8_associations_are_batched_after_creates_and_a_lookup_rides_on_the_records_update():
    """OPS-8: HubSpot associations are 100 a call; a Salesforce AccountId is a field of the Contact's update,
    so a Contact with a field update and an Account to set is one record in one call."""
    made, _ = _changes("salesforce")
    updates = pd.DataFrame({"kind": ["contact"], "record_id": ["003A"], "field": ["firstname"], "old": ["A"],
                            "new": ["B"], "decided_by": ["x"], "conflict": [False]})
    plan = TargetPlan("salesforce", updates=updates, associations=made)
    assert plan.work().values.tolist() == [["update", "contact", "003A"]]
    assert calls_needed("salesforce", plan.work()) == 1
    many = pd.DataFrame({"object": "deal_contact", "from_id": [f"d{i}" for i in range(150)], "to_id": "h1",
                         "via": "association", "action": "associate",
                         "record_id": [f"d{i}>h1" for i in range(150)]})
    assert calls_needed("hubspot", TargetPlan("hubspot", associations=many).work()) == 2
    counts = TargetPlan("hubspot", associations=many).counts()
    assert counts.loc["deal_contact", "associate"] == 150

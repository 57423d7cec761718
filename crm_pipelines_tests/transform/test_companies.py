"""Company identities COM-1, COM-3; Account creation COM-2."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform.companies import (
    account_creation_candidates,
    company_contact_pairs,
    company_identities,
    normalize_domains,
)
from crm_pipelines.transform.identities import contact_identities, contact_records
from crm_pipelines_tests.transform.conftest import mirrors


def _assoc(contact, company):
    return {"id": f"{contact}-{company}", "from_type": "contacts", "from_id": contact, "to_type": "companies",
            "to_id": company}


def _world():
    return mirrors(
        hubspot__contacts=[{"id": "h1", "email": "a@acme.com"}, {"id": "h2", "email": "b@acme.com"},
                           {"id": "h3", "email": "c@beta.de"}],
        hubspot__companies=[{"id": "C1", "name": "Acme", "domain": "acme-old.com"},
                            {"id": "C2", "name": "Acme Inc", "domain": "acme.com"},
                            {"id": "C3", "name": "Beta", "domain": None, "website": "https://www.beta.de/en/"},
                            {"id": "C4", "name": "Gamma", "domain": "gamma.io"}],
        hubspot__associations=[_assoc("h1", "C1"), _assoc("h2", "C1"), _assoc("h3", "C3")],
        salesforce__Contact=[{"id": "003a", "Email": "A@acme.com", "AccountId": "001X"},
                             {"id": "003b", "Email": "b@acme.com", "AccountId": "001X"}],
        salesforce__Account=[{"id": "001X", "Name": "ACME", "Website": "acme.com"},
                             {"id": "001Y", "Name": "Beta GmbH", "Website": "http://beta.de"},
                             {"id": "001Z", "Name": "Delta", "Website": None}],
    )


def test_com3_account_matched_by_contacts_before_domain():
    """001X shares two contacts with C1 although its website equals C2's domain: contacts win (COM-3)."""
    m = _world()
    ci = contact_identities(contact_records(m))
    co = company_identities(m, ci.members).identities.set_index("identity_id")
    assert co.loc["hubspot:C1", ["salesforce_id", "salesforce_method"]].tolist() == ["001X", "contacts"]
    assert pd.isna(co.loc["hubspot:C2", "salesforce_id"])


def test_com3_account_matched_by_domain_when_no_shared_contacts():
    m = _world()
    ci = contact_identities(contact_records(m))
    co = company_identities(m, ci.members).identities.set_index("identity_id")
    assert co.loc["hubspot:C3", ["salesforce_id", "salesforce_method"]].tolist() == ["001Y", "domain"]
    # an Account with neither becomes its own identity: a new HubSpot company will be created
    assert co.loc["salesforce:001Z", "salesforce_method"] == "unmatched"


def test_com3_existing_link_is_kept():
    m = _world()
    ci = contact_identities(contact_records(m))
    links = pd.DataFrame([{"kind": "company", "hubspot_id": "C4", "salesforce_id": "001X"}])
    co = company_identities(m, ci.members, links).identities.set_index("identity_id")
    assert co.loc["hubspot:C4", ["salesforce_id", "salesforce_method"]].tolist() == ["001X", "link"]
    assert pd.isna(co.loc["hubspot:C1", "salesforce_id"])


def test_com3_domain_normalization():
    got = normalize_domains(pd.Series(["HTTPS://WWW.X.de", "x.de", "www.x.de/", "http://www.x.de:8080/en/?a=1",
                                       "https://x.de/en/", None, "n/a"]))
    assert got.tolist()[:5] == ["x.de"] * 5 and pd.isna(got[5]) and pd.isna(got[6])


def test_com3_several_companies_with_one_domain_are_reported():
    m = mirrors(hubspot__companies=[{"id": "C1", "domain": "x.de"}, {"id": "C2", "domain": "x.de"}],
                salesforce__Account=[{"id": "001A", "Website": "www.x.de"}])
    co = company_identities(m, contact_identities(contact_records(m)).members)
    assert co.identities.set_index("identity_id").loc["hubspot:C1", "salesforce_id"] == "001A"
    assert co.findings[["id", "other_hubspot_id", "reason"]].values.tolist() == [
        ["001A", "C2", "several_companies_share_domain"]]


def _candidates(**kw):
    m = mirrors(
        hubspot__contacts=[{"id": "h1", "email": "a@x.com"}, {"id": "h2", "email": "b@y.com"},
                           {"id": "h3", "email": "bad(at)z.com"}],
        hubspot__companies=[{"id": "C1"}, {"id": "C2"}, {"id": "C3"}, {"id": "C4"}],
        hubspot__associations=[_assoc("h1", "C1"), _assoc("h2", "C2"), _assoc("h3", "C4")],
        salesforce__Lead=[{"id": "00Qb", "Email": "b@y.com", "IsConverted": False}],
    )
    ci = contact_identities(contact_records(m))
    co = company_identities(m, ci.members)
    out = account_creation_candidates(co.identities, company_contact_pairs(m), ci.identities, ci.members, **kw)
    return out.set_index("hubspot_id")


def test_com2_account_created_only_for_companies_with_a_contact_syncing_as_contact():
    c = _candidates(new_contact_type="Contact")
    assert c.loc["C1", "qualifies"] and c.loc["C1", "reason"] == "has_syncing_contact"
    assert not c.loc["C2", "qualifies"] and c.loc["C2", "reason"] == "all_contacts_are_leads"
    assert not c.loc["C3", "qualifies"] and c.loc["C3", "reason"] == "no_contacts"
    assert not c.loc["C4", "qualifies"]  # its only contact has no valid email (CON-3)


def test_com2_new_contacts_created_as_leads_do_not_qualify_and_requests_do():
    c = _candidates(new_contact_type="Lead", requested=("C3",))
    assert not c.loc["C1", "qualifies"]
    assert c.loc["C3", "qualifies"] and c.loc["C3", "reason"] == "requested"


def test_com2_inclusion_list():
    c = _candidates(new_contact_type="Contact", inclusion_list=("someone@else.com",))
    assert not c.loc["C1", "qualifies"] and c.loc["C1", "reason"] == "no_contact_in_inclusion_list"
    c = _candidates(new_contact_type="Contact", inclusion_list=("A@x.com",))
    assert c.loc["C1", "qualifies"]


def test_com3_on_the_generated_universe_matches_the_true_company(universe_frames):
    from crm_pipelines.bench.universe_frames import HS_COMPANY
    from crm_pipelines.sandbox.salesforce.ids import make_ids

    ci = contact_identities(contact_records(universe_frames))
    co = company_identities(universe_frames, ci.members).identities.dropna(subset=["hubspot_id", "salesforce_id"])
    truth = make_ids("001", co["hubspot_id"].astype("int64").to_numpy() - HS_COMPANY)
    assert len(co) > 100 and (truth == co["salesforce_id"].to_numpy()).all()

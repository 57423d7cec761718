"""Asset-check outcomes and lifecycle rules (CON-3, CON-9, COM-4, DEAL-7) and associations (DEAL-6)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform import checks
from crm_pipelines.transform.identities import contact_identities, contact_records
from crm_pipelines.transform.lifecycle import company_lifecycle, contact_lifecycle, later_stage
from crm_pipelines.transform.pipeline import TransformSettings, run_transform
from crm_pipelines_tests.transform.conftest import mirrors


def test_con11_duplicate_emails_check_counts_and_samples():
    m = mirrors(salesforce__Contact=[{"id": "003A", "Email": "a@x.com"}, {"id": "003B", "Email": "a@x.com"}])
    out = checks.duplicate_emails(contact_identities(contact_records(m)).findings)
    assert not out.passed and out.count == 1 and out.by == {"salesforce/duplicate_email": 1}
    assert out.sample[0]["id"] == "003B" and out.metadata()["count"] == 1


def test_con3_contacts_without_valid_email_check():
    m = mirrors(hubspot__contacts=[{"id": "1", "email": None}, {"id": "2", "email": "x@@y.com"},
                                   {"id": "3", "email": "ok@y.com"}])
    out = checks.contacts_without_valid_email(contact_identities(contact_records(m)).members)
    assert out.count == 2 and out.by == {"hubspot/invalid": 1, "hubspot/missing": 1}


def test_lifecycle_stages_only_move_forward():
    got = later_stage(pd.Series(["customer", "lead", None, "lead"]), pd.Series(["lead", "customer", "lead", None]))
    assert got.tolist() == ["customer", "customer", "lead", "lead"]


def test_con9_and_deal7_contact_lifecycle():
    contacts = pd.DataFrame({"id": ["1", "2", "3"], "lifecyclestage": ["subscriber", "lead", "evangelist"]})
    out = contact_lifecycle(contacts, pd.Series([True, False, True]), "salesqualifiedlead", pd.Series(["2", "3"]),
                            closed_won_sets_customer=True).set_index("id")
    assert out.loc["1", ["new_stage", "rule"]].tolist() == ["salesqualifiedlead", "CON-9"]
    assert out.loc["2", ["new_stage", "rule"]].tolist() == ["customer", "DEAL-7"]
    assert not out.loc["3", "changed"]  # an evangelist never goes back to customer


def test_com4_company_lifecycle_follows_its_most_advanced_contact():
    out = company_lifecycle(pd.DataFrame({"company_id": ["C1", "C1", "C2"], "contact_id": ["1", "2", "3"]}),
                            pd.DataFrame({"id": ["1", "2", "3"], "new_stage": ["lead", "customer", "lead"]}),
                            pd.DataFrame({"id": ["C1", "C2"], "lifecyclestage": ["lead", "opportunity"]}))
    assert out["new_stage"].tolist() == ["customer", "opportunity"] and out["changed"].tolist() == [True, False]


def test_deal6_associations_between_identities(universe_frames):
    r = run_transform(universe_frames, settings=TransformSettings(closed_won_sets_customer=True))
    # every carried association joins identities that exist
    assert r.deal_contact["contact_identity"].isin(r.contacts.identities["identity_id"]).all()
    assert r.deal_contact["deal_identity"].isin(r.deals["identity_id"]).all()
    assert r.deal_company["company_identity"].isin(r.companies.identities["identity_id"]).all()
    assert set(r.deal_contact["crm"]) == {"hubspot", "salesforce", "dynamics"}
    assert r.contact_company["company_identity"].isin(r.companies.identities["identity_id"]).all()
    assert r.lifecycle["changed"].any()

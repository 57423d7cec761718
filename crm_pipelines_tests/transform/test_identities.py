"""Contact identities: CON-2, CON-3, CON-4, CON-11."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform.emails import normalize_emails, valid_emails
from crm_pipelines.transform.identities import contact_identities, contact_records
from crm_pipelines_tests.transform.conftest import mirrors


def _run(links=None, valid_email_only=True, **frames):
    m = mirrors(**frames)
    return contact_identities(contact_records(m), links, valid_email_only)


def _identity_of(result, crm, id_):
    row = result.members[(result.members["crm"] == crm) & (result.members["id"] == id_)]
    return row["identity_id"].iloc[0], row["role"].iloc[0]


def test_con2_case_and_whitespace_variants_are_one_identity():
    r = _run(hubspot__contacts=[{"id": "1", "email": " Jane.Doe@Example.COM\t"}],
             salesforce__Contact=[{"id": "003A", "Email": "jane.doe@example.com"}],
             dynamics__contacts=[{"id": "d1", "emailaddress1": "JANE.DOE@EXAMPLE.COM "}])
    assert len(r.identities) == 1
    row = r.identities.iloc[0]
    assert (row["email"], row["hubspot_id"], row["salesforce_id"], row["dynamics_id"]) == (
        "jane.doe@example.com", "1", "003A", "d1")
    assert r.findings.empty


def test_con2_normalize_trims_and_casefolds():
    s = normalize_emails(pd.Series(["  A@B.DE ", "", None, "x@Y.com\t"]))
    assert s.tolist()[0] == "a@b.de" and pd.isna(s[1]) and pd.isna(s[2]) and s[3] == "x@y.com"


def test_con2_email_with_apostrophe_is_valid_and_matches():
    r = _run(hubspot__contacts=[{"id": "1", "email": "Siobhan.O'Brien@example.ie"}],
             salesforce__Contact=[{"id": "003A", "Email": "siobhan.o'brien@example.ie"}])
    assert len(r.identities) == 1 and r.identities.iloc[0]["salesforce_id"] == "003A"
    assert r.members["email_valid"].all()


def test_con3_fast_path_agrees_with_email_validator(universe):
    """CON-3: the regex fast path never accepts what email-validator rejects (checked on generated data)."""
    from crm_pipelines.transform.emails import _library_valid

    emails = pd.concat([c.appearances["email"] for c in universe.chunks()]).dropna()
    extra = pd.Series(["a@b", "x@@d.com", "x(at)d.com", "x@d,com", "a..b@c.de", ".a@c.de", "a@c.test",
                       "a@localhost", "a@-c.de", "a@c-.de", "jürgen@müller.de", "a@1.23", "a" * 65 + "@x.com",
                       "a@" + "b" * 250 + ".com", "a@x.local", "a@x.onion", "a@b@c.de", "@x.com", "a@x..com"])
    norm = normalize_emails(pd.concat([emails, extra], ignore_index=True)).dropna().drop_duplicates()
    fast = valid_emails(norm)
    slow = pd.Series([_library_valid(e) for e in norm], index=norm.index)
    assert (fast == slow).all(), norm[fast != slow].tolist()


def test_con3_invalid_and_missing_emails_stay_unmatched_when_valid_only():
    r = _run(hubspot__contacts=[{"id": "1", "email": "x(at)d.com"}, {"id": "2", "email": None}],
             salesforce__Contact=[{"id": "003A", "Email": "x(at)d.com"}])
    assert len(r.identities) == 3
    assert set(r.members["role"]) == {"unmatched"}


def test_con3_invalid_emails_match_when_setting_off():
    r = _run(valid_email_only=False, hubspot__contacts=[{"id": "1", "email": "x(at)d.com"}],
             salesforce__Contact=[{"id": "003A", "Email": "X(at)d.com"}])
    assert len(r.identities) == 1


def test_con4_lead_and_contact_with_one_email_contact_wins():
    r = _run(hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
             salesforce__Contact=[{"id": "003A", "Email": "a@x.com", "modified_at": "2020-01-01T00:00:00Z"}],
             salesforce__Lead=[{"id": "00QA", "Email": "A@x.com", "IsConverted": False,
                                "modified_at": "2025-01-01T00:00:00Z"}])
    row = r.identities.iloc[0]
    assert (row["salesforce_id"], row["salesforce_type"]) == ("003A", "Contact")
    assert r.findings[["id", "winner_id", "reason"]].values.tolist() == [
        ["00QA", "003A", "same_email_lead_not_chosen"]]


def test_con4_converted_lead_follows_its_contact():
    r = _run(hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
             salesforce__Lead=[{"id": "00QA", "Email": "a@x.com", "IsConverted": True, "ConvertedContactId": "003B"}],
             salesforce__Contact=[{"id": "003B", "Email": "a@x.com"}])
    assert r.identities.iloc[0]["salesforce_id"] == "003B"
    assert _identity_of(r, "salesforce", "00QA") == (r.identities.iloc[0]["identity_id"], "converted")
    assert r.findings.empty


def test_con4_a_converted_lead_and_its_contact_without_email_are_one_identity_with_the_hubspot_contact():
    """CON-4 as HubSpot does it (issue 11): the HubSpot contact that matches a converted Lead's email and the
    Contact that Lead became are one identity, even when the Contact carries no email; full and incremental."""
    from crm_pipelines.transform.incremental import incremental_transform
    from crm_pipelines.transform.pipeline import run_transform

    frames = dict(hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
                  salesforce__Lead=[{"id": "00QA", "Email": "a@x.com", "IsConverted": True,
                                     "ConvertedContactId": "003B"}],
                  salesforce__Contact=[{"id": "003B", "Email": None}])
    r = _run(**frames)
    assert len(r.identities) == 1
    row = r.identities.iloc[0]
    assert (row["hubspot_id"], row["salesforce_id"], row["salesforce_type"]) == ("1", "003B", "Contact")
    assert _identity_of(r, "salesforce", "00QA") == (row["identity_id"], "converted")

    # the conversion arriving later, as an incremental change, gives the same
    before = run_transform(mirrors(hubspot__contacts=frames["hubspot__contacts"],
                                   salesforce__Lead=[{"id": "00QA", "Email": "a@x.com", "IsConverted": False}]))
    after = incremental_transform(before, mirrors(salesforce__Lead=frames["salesforce__Lead"],
                                                  salesforce__Contact=frames["salesforce__Contact"]))
    assert after.contacts.identities[["hubspot_id", "salesforce_id"]].values.tolist() == [["1", "003B"]]


def test_con4_linked_lead_that_converts_moves_to_its_contact():
    links = pd.DataFrame([{"kind": "contact", "hubspot_id": "1", "salesforce_id": "00QA", "salesforce_type": "Lead"}])
    r = _run(links, hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
             salesforce__Lead=[{"id": "00QA", "Email": "a@x.com", "IsConverted": True, "ConvertedContactId": "003B"}],
             salesforce__Contact=[{"id": "003B", "Email": "other@x.com"}])
    row = r.identities.set_index("identity_id").loc["link:1"]
    assert (row["salesforce_id"], row["salesforce_type"]) == ("003B", "Contact")


def test_con11_two_contacts_one_email_is_an_ambiguity_finding():
    r = _run(salesforce__Contact=[{"id": "003B", "Email": "a@x.com", "modified_at": "2024-01-01T00:00:00Z"},
                                  {"id": "003A", "Email": "a@x.com", "modified_at": "2024-01-01T00:00:00Z"},
                                  {"id": "003C", "Email": "a@x.com", "modified_at": "2023-01-01T00:00:00Z"}])
    # same modification time: lowest id wins; the older one loses whatever its id
    assert r.identities.iloc[0]["salesforce_id"] == "003A"
    assert sorted(r.findings["id"]) == ["003B", "003C"]
    assert set(r.findings["reason"]) == {"duplicate_email"}


def test_con11_most_recently_modified_wins_in_dynamics():
    r = _run(dynamics__contacts=[{"id": "a", "emailaddress1": "a@x.com", "modified_at": "2020-01-01T00:00:00Z"},
                                 {"id": "b", "emailaddress1": "a@x.com", "modified_at": "2024-01-01T00:00:00Z"}])
    assert r.identities.iloc[0]["dynamics_id"] == "b"


def test_con11_links_are_kept_when_a_duplicate_appears():
    links = pd.DataFrame([{"kind": "contact", "hubspot_id": "1", "salesforce_id": "003OLD",
                           "salesforce_type": "Contact"}])
    r = _run(links, hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
             salesforce__Contact=[{"id": "003OLD", "Email": "a@x.com", "modified_at": "2020-01-01T00:00:00Z"},
                                  {"id": "003NEW", "Email": "a@x.com", "modified_at": "2025-01-01T00:00:00Z"}])
    assert r.identities[["identity_id", "salesforce_id"]].values.tolist() == [["link:1", "003OLD"]]
    assert r.findings[["id", "reason", "winner_id"]].values.tolist() == [["003NEW", "linked_record_exists", "003OLD"]]


def test_con11_linked_identity_keeps_record_whose_email_changed_and_gains_free_slot():
    links = pd.DataFrame([{"kind": "contact", "hubspot_id": "1", "salesforce_id": "003A",
                           "salesforce_type": "Contact"}])
    r = _run(links, hubspot__contacts=[{"id": "1", "email": "a@x.com"}],
             salesforce__Contact=[{"id": "003A", "Email": "renamed@x.com"}],
             dynamics__contacts=[{"id": "d1", "emailaddress1": "a@x.com"}])
    row = r.identities.set_index("identity_id").loc["link:1"]
    assert (row["salesforce_id"], row["dynamics_id"], row["email"]) == ("003A", "d1", "a@x.com")
    assert len(r.identities) == 1


def test_deleted_records_are_ignored():
    r = _run(salesforce__Contact=[{"id": "003A", "Email": "a@x.com", "deleted": True},
                                  {"id": "003B", "Email": "a@x.com"}])
    assert r.identities.iloc[0]["salesforce_id"] == "003B" and r.findings.empty


def test_con2_identity_counts_on_the_generated_universe(universe, universe_frames):
    """CON-2/CON-11 on generated data: one identity per distinct valid email the CRMs show (converted Leads are
    represented by their Contact), each identity holds exactly one person, and SF/Dynamics duplicates are
    findings."""
    ap = pd.concat([c.appearances for c in universe.chunks()], ignore_index=True)
    r = contact_identities(contact_records(universe_frames))
    shown = ap[ap["email_valid"] & ~ap["converted_to_contact"]]
    # CON-4: a converted Lead's email counts where the Contact it became has no valid email of its own
    contacts = ap[(ap["crm"] == "salesforce") & (ap["kind"] == "Contact")].set_index("record_id")["email_valid"]
    heirs = ap[ap["email_valid"] & ap["converted_to_contact"]]
    heirs = heirs[~heirs["converted_contact_record_id"].map(contacts).fillna(False).astype(bool)]
    expected = pd.concat([normalize_emails(shown["email"]), normalize_emails(heirs["email"])]).nunique()
    assert r.identities["email"].notna().sum() == expected
    assert r.identities["identity_id"].is_unique
    # purity: every record of an identity belongs to the same person (record ids are person_id * 8 + slot)
    m = r.members[r.members["role"].isin(["matched", "converted", "ambiguous"])]
    rid = ap.assign(key=ap["crm"].astype(str) + ":" + ap["kind"].astype(str) + ":" + ap["record_id"].astype(str))
    from crm_pipelines.bench.universe_frames import HS_CONTACT
    from crm_pipelines.sandbox.dynamics.seed import guids
    from crm_pipelines.sandbox.salesforce.ids import make_ids
    ids = pd.Series(rid["record_id"].to_numpy(), dtype="int64")
    hs = rid["crm"] == "hubspot"
    sf = rid["crm"] == "salesforce"
    dy = rid["crm"] == "dynamics"
    native = pd.Series("", index=rid.index, dtype=object)
    native[hs] = (HS_CONTACT + ids[hs.to_numpy()]).astype(str).to_numpy()
    native[sf & (rid["kind"] == "Contact")] = make_ids("003", ids[(sf & (rid["kind"] == "Contact")).to_numpy()])
    native[sf & (rid["kind"] == "Lead")] = make_ids("00Q", ids[(sf & (rid["kind"] == "Lead")).to_numpy()])
    for k in ("contact", "lead"):
        sel = dy & (rid["kind"] == k)
        native[sel] = guids(ids[sel.to_numpy()].to_numpy(), k, universe.seed)
    person = pd.Series((ids // 8).to_numpy(), index=native.to_numpy())
    assert m.assign(person=m["id"].map(person)).groupby("identity_id")["person"].nunique().max() == 1
    # every SF/Dynamics duplicate with a usable email is a finding, never a second linked record
    manifest = universe.manifest()
    assert len(r.findings) <= manifest["crms"]["salesforce"]["duplicate_records"] + manifest["crms"]["dynamics"][
        "duplicate_records"]
    per_slot = r.members[r.members["role"].isin(["linked", "matched"])].groupby(["identity_id", "crm"]).size()
    assert per_slot.max() == 1

"""The sandbox universe (issue "sandbox data generator").

One deterministic generator (``seed``, ``scale``) from which the HubSpot, Salesforce and Dynamics
sandboxes draw overlapping, messy shares; its manifest states the counts every sandbox will hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata

import pandas as pd
import pytest

from crm_pipelines.sandbox.universe import CRMS, PIPELINES, TIME_RANGE, Universe

START, END = TIME_RANGE
VALID = re.compile(r"^[a-z0-9'._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")


class Frames:
    """All frames of a universe, concatenated over its chunks."""

    def __init__(self, universe: Universe):
        self.universe = universe
        chunks = list(universe.chunks())
        self.chunks = chunks
        self.owners = universe.owners()
        self.companies = universe.companies()
        self.people = pd.concat([c.people for c in chunks], ignore_index=True)
        self.appearances = pd.concat([c.appearances for c in chunks], ignore_index=True)
        self.deals = pd.concat([c.deals for c in chunks], ignore_index=True)
        self.deal_contacts = pd.concat([c.deal_contacts for c in chunks], ignore_index=True)


@pytest.fixture(scope="module")
def small() -> Frames:
    return Frames(Universe(seed=42, scale=200))


@pytest.fixture(scope="module")
def multi() -> Frames:
    """Several chunks, so everything chunk-related is exercised."""
    return Frames(Universe(seed=7, scale=3_500, chunk_size=1_000))


def _digest(universe: Universe) -> str:
    h = hashlib.sha256()
    frames = [universe.owners(), universe.companies()]
    for ch in universe.chunks():
        frames += [ch.people, ch.appearances, ch.deals, ch.deal_contacts]
    for frame in frames:
        h.update(",".join(frame.columns).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# interface and determinism


def test_arguments_are_validated():
    with pytest.raises(ValueError):
        Universe(seed=1, scale=99)
    with pytest.raises(ValueError):
        Universe(seed=1, scale=1_000, chunk_size=1_500)
    with pytest.raises(TypeError):
        Universe(seed=1, scale=1_000.0)  # type: ignore[arg-type]
    assert CRMS == ("hubspot", "salesforce", "dynamics")


def test_same_seed_same_frames_different_seed_different_frames(small):
    again = Frames(Universe(seed=42, scale=200))
    for name in ("owners", "companies", "people", "appearances", "deals", "deal_contacts"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    other = Frames(Universe(seed=43, scale=200))
    for name in ("companies", "people", "appearances", "deals"):
        assert not getattr(small, name).equals(getattr(other, name)), name


def test_independent_of_the_python_hash_seed():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_universe as t; "
        "from crm_pipelines.sandbox.universe import Universe; print(t._digest(Universe(5, 150)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == _digest(Universe(5, 150))


def test_data_do_not_depend_on_chunk_size(multi):
    one = Frames(Universe(seed=7, scale=3_500))
    assert len(one.chunks) == 1 and len(multi.chunks) == 4
    for name in ("people", "appearances", "deals", "deal_contacts"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(multi, name))
    assert one.universe.manifest() == multi.universe.manifest()


def test_columns_ids_and_dtypes(multi):
    f = multi
    assert list(f.owners.columns) == ["owner_id", "first_name", "last_name", "email"]
    for frame, cols in (
        (f.companies, ["company_id", "name", "domain", "website", "phone", "city", "state_text", "country_text",
                       "industry", "num_employees", "annual_revenue", "owner_id", "created_at", "modified_at",
                       "in_hubspot", "in_salesforce", "in_dynamics"]),
        (f.people, ["person_id", "first_name", "last_name", "email", "email_valid", "phone", "job_title", "city",
                    "state_text", "country_text", "company_id", "owner_id", "lifecycle_stage", "created_at",
                    "modified_at"]),
        (f.appearances, ["record_id", "crm", "kind", "person_id", "email", "is_duplicate", "converted_to_contact",
                         "company_id", "created_at", "modified_at"]),
        (f.deals, ["deal_id", "name", "amount", "currency", "pipeline", "stage", "is_closed", "is_won", "close_date",
                   "deal_type", "description", "owner_id", "company_id", "created_at", "modified_at", "in_hubspot",
                   "in_salesforce", "in_dynamics"]),
        (f.deal_contacts, ["deal_id", "person_id", "is_primary", "hubspot_record_id", "salesforce_record_id",
                           "dynamics_record_id"]),
    ):
        assert set(cols) <= set(frame.columns), set(cols) - set(frame.columns)
        for col in frame.columns:
            if col.endswith("_at") or col == "close_date":
                assert str(frame[col].dtype) == "datetime64[ms, UTC]", col
    u = f.universe
    assert f.people["person_id"].tolist() == list(range(u.scale))
    assert f.companies["company_id"].tolist() == list(range(u.scale // 8))
    assert f.owners["owner_id"].tolist() == list(range(u.n_owners)) and u.n_owners == 5
    assert f.deals["deal_id"].tolist() == list(range(len(f.deals)))
    assert f.appearances["record_id"].is_unique and f.appearances["record_id"].is_monotonic_increasing
    assert (f.appearances["record_id"] // 8 == f.appearances["person_id"]).all()
    assert str(f.people["company_id"].dtype) == "Int64" and str(f.deals["amount"].dtype) == "Float64"
    assert 0.8 < f.people["company_id"].notna().mean() < 0.9
    # chunks are in step: ids ascending, appearances/deal contacts of a chunk are about its own people
    last = -1
    for ch in f.chunks:
        ids = ch.people["person_id"]
        assert ids.iloc[0] == last + 1 and ids.is_monotonic_increasing
        last = ids.iloc[-1]
        assert ch.appearances["person_id"].isin(ids).all() and ch.deal_contacts["person_id"].isin(ids).all()
        assert ch.deal_contacts["deal_id"].isin(ch.deals["deal_id"]).all()
    assert set(f.appearances["kind"].groupby(f.appearances["crm"]).unique().map(frozenset)) == {
        frozenset({"contact"}), frozenset({"Lead", "Contact"}), frozenset({"contact", "lead"})}
    assert set(f.people["lifecycle_stage"]) <= {"subscriber", "lead", "marketingqualifiedlead",
                                                 "salesqualifiedlead", "opportunity", "customer", "evangelist",
                                                 "other"}


# ------------------------------------------------------------------------------------------------
# manifest


def test_manifest_matches_counts_recomputed_from_the_frames(multi):
    f = multi
    m = f.universe.manifest()
    assert json.loads(json.dumps(m)) == m
    assert m["seed"] == 7 and m["scale"] == 3_500 and m["pipelines"] == PIPELINES
    assert m["people"] == len(f.people) and m["companies"] == len(f.companies)
    assert m["deals"] == len(f.deals) and m["owners"] == len(f.owners)
    assert m["deal_contacts"] == len(f.deal_contacts)
    assert m["people_without_email"] == f.people["email"].isna().sum()
    assert m["companies_without_domain"] == f.companies["domain"].isna().sum()
    ap, dc = f.appearances, f.deal_contacts
    hs, sf, dy = (ap[ap["crm"] == c] for c in CRMS)

    def invalid(frame):
        return int((frame["email"].notna() & ~frame["email"].str.strip().str.lower().str.match(VALID)).sum())

    engaged = dc["hubspot_record_id"].notna() & dc["is_primary"]
    closed = dc["deal_id"].map(f.deals.set_index("deal_id")["is_closed"]).astype(bool)
    assert m["crms"]["hubspot"] == {
        "contacts": len(hs),
        "contacts_without_email": hs["email"].isna().sum(),
        "contacts_invalid_email": invalid(hs),
        "duplicate_records": len(hs) - hs["person_id"].nunique(),
        "people": hs["person_id"].nunique(),
        "companies": f.companies["in_hubspot"].sum(),
        "deals": f.deals["in_hubspot"].sum(),
        "deal_contacts": dc["hubspot_record_id"].notna().sum(),
        "tasks": (engaged & ~closed).sum(),
        "calls": (engaged & closed).sum(),
        "owners": 5,
    }
    s = m["crms"]["salesforce"]
    assert s["Lead"] == (sf["kind"] == "Lead").sum() and s["Contact"] == (sf["kind"] == "Contact").sum()
    assert s["converted_leads"] == sf["converted_to_contact"].sum() > 0
    assert s["duplicate_records"] == len(sf) - sf["person_id"].nunique()
    assert s["records_invalid_email"] == invalid(sf)
    assert s["Account"] == f.companies["in_salesforce"].sum()
    assert s["Opportunity"] == f.deals["in_salesforce"].sum()
    assert s["OpportunityContactRole"] == dc["salesforce_record_id"].notna().sum()
    d = m["crms"]["dynamics"]
    assert d["contact"] == (dy["kind"] == "contact").sum() and d["lead"] == (dy["kind"] == "lead").sum()
    assert d["account"] == f.companies["in_dynamics"].sum() and d["opportunity"] == f.deals["in_dynamics"].sum()
    assert d["duplicate_records"] == len(dy) - dy["person_id"].nunique()
    in_crms = ap.groupby("person_id")["crm"].nunique().reindex(f.people["person_id"], fill_value=0)
    assert m["people_by_number_of_crms"] == {str(i): int((in_crms == i).sum()) for i in range(4)}
    # the manifest is computed once and cached (a full chunks() pass fills it); callers cannot corrupt the cache
    m["people"] = -1
    assert f.universe.manifest()["people"] == len(f.people)
    fresh = Universe(seed=7, scale=3_500, chunk_size=1_000)
    assert fresh.manifest() == f.universe.manifest()


def test_shares_are_roughly_as_documented(multi):
    f = multi
    n = len(f.people)
    ap = f.appearances
    share = {c: ap.loc[ap["crm"] == c, "person_id"].nunique() / n for c in CRMS}
    assert 0.65 < share["hubspot"] < 0.75 and 0.5 < share["salesforce"] < 0.6 and 0.3 < share["dynamics"] < 0.4
    assert 0.2 < f.companies["domain"].isna().mean() < 0.3
    for col, expected in (("in_hubspot", 0.8), ("in_salesforce", 0.6), ("in_dynamics", 0.45)):
        assert abs(f.companies[col].mean() - expected) < 0.06
    assert 0.3 < len(f.deals) / n < 0.5
    per_deal = f.deal_contacts.groupby("deal_id").agg(n=("person_id", "size"), primary=("is_primary", "sum"))
    assert per_deal["n"].between(1, 3).all() and (per_deal["primary"] == 1).all()
    assert len(per_deal) == len(f.deals)


# ------------------------------------------------------------------------------------------------
# emails


def test_hubspot_emails_are_unique_after_trim_and_lowercase(multi, small):
    for f in (multi, small):
        hs = f.appearances.loc[f.appearances["crm"] == "hubspot", "email"].dropna()
        assert hs.str.strip().str.lower().is_unique


def test_same_email_always_means_same_person(multi):
    f = multi
    valid = f.people.loc[f.people["email_valid"], "email"]
    assert valid.is_unique and valid.str.match(VALID).all()
    assert f.people.loc[f.people["email"].notna(), "email"].is_unique
    assert (f.people["email"].dropna() == f.people["email"].dropna().str.strip().str.lower()).all()
    assert not f.people.loc[~f.people["email_valid"], "email"].dropna().str.match(VALID).any()
    ap = f.appearances.dropna(subset=["email"])
    key = ap["email"].str.strip().str.lower()
    assert (ap.groupby(key)["person_id"].nunique() == 1).all()
    # the written email is the person's canonical one, except HubSpot's alternate sub-addresses
    canonical = f.people.set_index("person_id")["email"]
    same = ap["email_variant"] != "alternate"
    assert (key[same].to_numpy() == canonical.loc[ap.loc[same, "person_id"]].to_numpy()).all()
    alternate = ap[~same]
    assert (alternate["crm"] == "hubspot").all() and alternate["is_duplicate"].all()
    assert not key[~same].isin(f.people["email"]).any()
    assert (f.owners["email"] == f.owners["email"].str.lower()).all() and f.owners["email"].is_unique


def test_every_kind_of_mess_is_present(small):
    f = small
    people, ap, co = f.people, f.appearances, f.companies
    emails = people["email"].dropna()
    assert people["email"].isna().any()  # missing
    assert (people["email"].notna() & ~people["email_valid"]).any()  # invalid
    assert emails.str.contains("+", regex=False).any()
    assert emails.str.contains("'", regex=False).any()
    assert (people["first_name"] + people["last_name"]).map(lambda s: not s.isascii()).any()
    names = set(people["first_name"]) | set(people["last_name"])
    assert {"Jürgen", "Müller", "Zoë", "Łukasz", "O'Brien"} <= names
    assert {"USA", "United States", "Deutschland"} <= set(people["country_text"].dropna())
    assert "CA" in set(people["state_text"].dropna())
    assert co["domain"].isna().any() and co["domain"].notna().any()
    for crm_flag in ("in_hubspot", "in_salesforce", "in_dynamics"):
        assert (co[crm_flag] & co["domain"].isna()).any()
    written = ap.dropna(subset=["email"])
    stripped = written["email"].str.strip()
    assert (written["email"] != stripped).any()  # whitespace variant
    assert (stripped != stripped.str.lower()).any()  # case variant
    assert ap["email"].isna().any() and (ap["email_variant"] == "missing").any()
    # a person with an email whose record in some CRM has none
    has_email = ap["person_id"].map(people.set_index("person_id")["email"].notna())
    assert (has_email & ap["email"].isna()).any()
    for crm in CRMS:
        rec = ap[ap["crm"] == crm]
        assert rec["is_duplicate"].any(), crm
        assert ((rec["email_variant"] == "case") & rec["email"].notna()).any(), crm
        assert ((rec["email_variant"] == "whitespace") & rec["email"].notna()).any(), crm
    # exact duplicates (same email twice) in Salesforce and Dynamics
    for crm in ("salesforce", "dynamics"):
        rec = ap[(ap["crm"] == crm) & ap["email"].notna()]
        assert rec.duplicated(["person_id", "email"]).any(), crm
    # a Salesforce Lead and Contact of one person, and converted Leads pointing at that person's Contact
    sf = ap[ap["crm"] == "salesforce"]
    kinds = sf.groupby("person_id")["kind"].agg(frozenset)
    assert (kinds == frozenset({"Lead", "Contact"})).any()
    conv = sf[sf["converted_to_contact"]]
    assert len(conv) and (conv["kind"] == "Lead").all()
    target = sf.set_index("record_id").loc[conv["converted_contact_record_id"].astype("int64")]
    assert (target["kind"] == "Contact").all() and (target["person_id"].to_numpy() == conv["person_id"]).all()
    assert (target["created_at"].to_numpy() >= conv["created_at"].to_numpy()).all()
    assert sf.loc[~sf["converted_to_contact"], "converted_contact_record_id"].isna().all()


def test_ascii_folded_local_parts():
    f = Frames(Universe(seed=3, scale=2_000))
    people = f.people[f.people["email_valid"]]
    local = people["email"].str.split("@").str[0]
    assert local.map(str.isascii).all()
    folded = people["last_name"].map(
        lambda s: "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c)))
    assert (~people["last_name"].str.isascii() & folded.str.isascii()).any()
    assert people.loc[people["first_name"] == "Jürgen", "email"].str.startswith("juergen").all()


# ------------------------------------------------------------------------------------------------
# deals


@pytest.mark.parametrize("scale", [100, 200])
def test_every_pipeline_stage_in_every_crm(scale, small):
    deals = small.deals if scale == 200 else Frames(Universe(seed=9, scale=scale)).deals
    pairs = {(p, s) for p, stages in PIPELINES.items() for s in stages}
    for flag in ("in_hubspot", "in_salesforce", "in_dynamics"):
        share = deals[deals[flag]]
        assert set(zip(share["pipeline"], share["stage"], strict=True)) == pairs, flag
    assert (deals["is_won"] == (deals["stage"] == "won")).all()
    assert (deals["is_closed"] == deals["stage"].isin(["won", "lost"])).all()
    assert deals["amount"].isna().any() or scale == 100
    assert set(deals["currency"]) <= {"USD", "EUR"} and set(deals["deal_type"]) <= {"newbusiness",
                                                                                     "existingbusiness"}


def _won_rollups(f: Frames) -> pd.DataFrame:
    won = f.deal_contacts.merge(f.deals, on="deal_id")
    won = won[won["is_won"] & won["hubspot_record_id"].notna()]
    by_created = won.sort_values(["person_id", "created_at"]).groupby("person_id").tail(1).set_index("person_id")
    by_closed = won.sort_values(["person_id", "close_date"]).groupby("person_id").tail(1).set_index("person_id")
    return pd.DataFrame({"recent_deal_amount": by_created["amount"], "recent_created_deal": by_created["deal_id"],
                         "recent_closed_deal": by_closed["deal_id"].reindex(by_created.index),
                         "n_won": won.groupby("person_id").size()})


def test_most_recently_created_won_deal_differs_from_most_recently_closed(small, multi):
    for f in (small, multi):
        r = _won_rollups(f)
        differ = r[r["recent_created_deal"] != r["recent_closed_deal"]]
        assert len(differ) >= 1
        assert (r["n_won"] >= 2).any()
    # person 0 is the documented example (HubSpot contact): 1200 (created last) vs 5000 (closed last)
    r = _won_rollups(small)
    assert r.loc[0, "recent_deal_amount"] == 1200.0
    assert small.deals.set_index("deal_id").loc[r.loc[0, "recent_closed_deal"], "amount"] == 5000.0


def test_references_stay_inside_each_crm(multi):
    f = multi
    co = f.companies.set_index("company_id")
    ap = f.appearances
    flag = {"hubspot": "in_hubspot", "salesforce": "in_salesforce", "dynamics": "in_dynamics"}
    # a record's company exists in the record's CRM; the record's company is the person's company
    rec = ap[ap["company_id"].notna()]
    for crm, fl in flag.items():
        ids = rec.loc[rec["crm"] == crm, "company_id"].astype("int64")
        assert co.loc[ids, fl].all(), crm
    person_company = f.people.set_index("person_id")["company_id"]
    assert (rec["company_id"].to_numpy() == person_company.loc[rec["person_id"]].to_numpy()).all()
    # a deal is only in a CRM that has its company
    deals = f.deals[f.deals["company_id"].notna()]
    for fl in flag.values():
        sub = deals[deals[fl]]
        assert co.loc[sub["company_id"].astype("int64"), fl].all(), fl
    # association targets are records of that person, of the right kind, in that CRM
    by_id = ap.set_index("record_id")
    deal_in = f.deals.set_index("deal_id")
    for crm, kind in (("hubspot", "contact"), ("salesforce", "Contact"), ("dynamics", "contact")):
        dc = f.deal_contacts[f.deal_contacts[f"{crm}_record_id"].notna()]
        target = by_id.loc[dc[f"{crm}_record_id"].astype("int64")]
        assert (target["crm"] == crm).all() and (target["kind"] == kind).all()
        assert (target["person_id"].to_numpy() == dc["person_id"].to_numpy()).all()
        assert deal_in.loc[dc["deal_id"], flag[crm]].all()
    # owners referenced anywhere exist
    for frame in (f.companies, f.people, f.deals):
        assert frame["owner_id"].isin(f.owners["owner_id"]).all()
    # deal contacts prefer colleagues at the deal's company
    dc = f.deal_contacts.merge(f.deals[["deal_id", "company_id"]], on="deal_id")
    dc = dc[dc["company_id"].notna()]
    same = dc["company_id"].to_numpy() == person_company.loc[dc["person_id"]].to_numpy()
    assert same.mean() > 0.95


# ------------------------------------------------------------------------------------------------
# time


def test_times_within_the_fixed_range_and_modified_after_created(multi):
    f = multi
    for name in ("companies", "people", "appearances", "deals"):
        frame = getattr(f, name)
        for col in ("created_at", "modified_at"):
            assert frame[col].between(START, END).all(), (name, col)
        assert (frame["modified_at"] >= frame["created_at"]).all(), name
        assert frame["created_at"].dt.year.nunique() >= 5, name
    people_created = f.people.set_index("person_id")["created_at"]
    ap = f.appearances
    assert (ap["created_at"].to_numpy() >= people_created.loc[ap["person_id"]].to_numpy()).all()
    deals = f.deals
    closed, open_ = deals[deals["is_closed"]], deals[~deals["is_closed"]]
    assert (closed["close_date"] <= END).all() and (closed["close_date"] >= START).all()
    assert (closed["close_date"] >= closed["created_at"].dt.floor("D")).all()
    assert (open_["close_date"] > END).all()
    assert (deals["close_date"] == deals["close_date"].dt.floor("D")).all()

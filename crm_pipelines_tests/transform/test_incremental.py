"""Incremental transform equals a full recompute (Invariant 6; CON-2/CON-4/CON-11 identities, rollups, DEAL-2,
COM-1..4 company identities and candidates, DEAL-6 associations, CON-9/DEAL-7 lifecycle)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from crm_pipelines.bench.transform import changed_records
from crm_pipelines.transform import lookup
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.incremental import incremental_changes, incremental_transform
from crm_pipelines.transform.pipeline import TransformResult, TransformSettings, run_transform


@pytest.fixture(autouse=True, params=["scanned", "indexed"])
def lookup_mode(request, monkeypatch):
    """Every test runs twice: with the small test frames scanned (below ``MIN_ROWS``) and with every lookup of
    the incremental run going through the indexes the full run builds."""
    if request.param == "indexed":
        monkeypatch.setattr(lookup, "MIN_ROWS", 0)
    return request.param


def test_column_index_matches_isin():
    values = pd.Series(["a", "b", None, "a", "c", pd.NA, "b", "a", "d"], dtype=object)
    frame = pd.DataFrame({"v": values})
    lk = lookup.Lookups()
    lk.add(frame, "v", lookup.ColumnIndex(frame["v"]))
    for query in ({"a"}, {"b", "zz"}, {"zz"}, set(), ["c", "a", "a"], {"d", "a", "b", "c"}):
        got = lookup.isin(lk, frame, "v", query)
        assert (got == frame["v"].isin(list(query)).to_numpy()).all(), query
    copy = frame.copy()  # another frame object: scanned, not read through the index
    assert lookup.isin(lk, copy, "v", {"a"}).sum() == 3
    assert lk.get(copy, "v") is None


def test_full_run_builds_the_indexes(universe_frames, lookup_mode):
    result = run_transform(universe_frames, None, TransformSettings())
    lk = lookup.lookups_of(result)
    assert lk is not None
    members = result.contacts.members
    if lookup_mode == "indexed":
        ix = lk.get(members, "identity_id")
        assert ix is not None
        some = members["identity_id"].dropna().unique()[:50]
        pos = ix.positions(members["identity_id"], pd.Index(some, dtype=object))
        assert np.array_equal(pos, np.flatnonzero(members["identity_id"].isin(some).to_numpy()))


def _apply(base: Mirrors, delta: Mirrors) -> Mirrors:
    frames = dict(base.frames)
    for key, f in delta.frames.items():
        old = frames[key]
        frames[key] = pd.concat([old[~old["id"].isin(f["id"])], f], ignore_index=True)
    return Mirrors(frames)


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    # every column as text, rows in a canonical order: the incremental path splices rows, so order differs
    out = df.astype("string").fillna("\x00")
    return out.sort_values(list(out.columns)).reset_index(drop=True)


def _same(a: pd.DataFrame, b: pd.DataFrame, name: str) -> None:
    assert list(a.columns) == list(b.columns) or (a.empty and b.empty), name
    if a.empty and b.empty:
        return
    na, nb = _norm(a), _norm(b)
    assert len(na) == len(nb), f"{name}: {len(na)} rows vs {len(nb)}"
    assert na.equals(nb), name


def _assert_equal(inc: TransformResult, full: TransformResult) -> None:
    """EVERY output of ``TransformResult`` (and the record-level state the next incremental run reads)."""
    for f in dataclasses.fields(TransformResult):
        a, b = getattr(inc, f.name), getattr(full, f.name)
        if isinstance(b, pd.DataFrame):
            _same(a, b, f.name)
        elif isinstance(b, dict):
            assert set(a) == set(b), f.name
            for key, frame in b.items():
                _same(a[key], frame, f"{f.name}{key}")
        else:
            for g in dataclasses.fields(b):
                _same(getattr(a, g.name), getattr(b, g.name), f"{f.name}.{g.name}")


def _links(result: TransformResult, n: int) -> pd.DataFrame:
    ids = result.contacts.identities.dropna(subset=["hubspot_id", "salesforce_id"]).head(n)
    return ids[["hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type"]].assign(
        kind="contact")


def test_incremental_equals_full_recompute_on_generated_changes(universe_frames):
    links = _links(run_transform(universe_frames), 300)
    before = run_transform(universe_frames, links)
    delta = changed_records(universe_frames, 400, seed=3)
    # plus deletions and a brand-new record sharing an existing email (a new duplicate)
    sf = universe_frames.frames[("salesforce", "Contact")]
    gone = sf.iloc[[5, 50]].assign(deleted=True, modified_at=pd.Timestamp("2026-07-02", tz="UTC"))
    twin = sf[sf["Email"].notna()].iloc[[10]].assign(id="003NEWTWIN00000AAA",
                                                     modified_at=pd.Timestamp("2026-07-03", tz="UTC"))
    frames = dict(delta.frames)
    frames[("salesforce", "Contact")] = pd.concat([frames[("salesforce", "Contact")], gone, twin], ignore_index=True)
    delta = Mirrors(frames)
    inc = incremental_transform(before, delta, links)
    full = run_transform(_apply(universe_frames, delta), links)
    _assert_equal(inc, full)
    assert "003NEWTWIN00000AAA" in set(inc.contacts.findings["id"]) | set(inc.contacts.identities["salesforce_id"])


def test_incremental_lead_conversion_follows_contact(universe_frames):
    """CON-4 in an incremental run: a Lead converted since the last run moves its identity to the Contact."""
    leads = universe_frames.frames[("salesforce", "Lead")]
    contacts = universe_frames.frames[("salesforce", "Contact")]
    lead = leads[leads["Email"].notna() & ~leads["IsConverted"].astype(bool)].iloc[[0]]
    contact = contacts[contacts["Email"].notna()].iloc[[0]]
    before = run_transform(universe_frames)
    t = pd.Timestamp("2026-07-05", tz="UTC")
    delta = Mirrors({("salesforce", "Lead"): lead.assign(IsConverted=True, ConvertedContactId=contact["id"].iloc[0],
                                                         modified_at=t)})
    inc = incremental_transform(before, delta)
    full = run_transform(_apply(universe_frames, delta))
    _assert_equal(inc, full)
    role = inc.contacts.members.set_index("id").loc[lead["id"].iloc[0], "role"]
    assert role == "converted"


def test_incremental_deal_change_updates_rollups(universe_frames):
    """Rollup table: changing a deal's amount recomputes only its contacts' rollups, same as a full run."""
    before = run_transform(universe_frames)
    deals = universe_frames.frames[("hubspot", "deals")]
    d = deals.iloc[[0, 1, 2]].assign(amount="123456", modified_at=pd.Timestamp("2026-07-05", tz="UTC"))
    delta = Mirrors({("hubspot", "deals"): d})
    inc = incremental_transform(before, delta)
    _assert_equal(inc, run_transform(_apply(universe_frames, delta)))


def _row(frame: pd.DataFrame, **values) -> pd.DataFrame:
    return frame.iloc[[0]].assign(**values, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))


def test_incremental_company_changes_equal_full_recompute(universe_frames):
    """COM-1/COM-3 identities, COM-2 candidates, DEAL-6 associations, CON-9/DEAL-7/COM-4 lifecycle: a delta that
    changes companies, accounts, associations, contacts and deals gives what a full run gives, output by output."""
    settings = TransformSettings(dynamics_lifecycle_stage="salesqualifiedlead", closed_won_sets_customer=True,
                                 new_contact_type="Contact")
    f = universe_frames.frames
    links = _links(run_transform(universe_frames, settings=settings), 100)
    before = run_transform(universe_frames, links, settings)
    co = before.companies.identities
    hs_co, acc, assocs = f[("hubspot", "companies")], f[("salesforce", "Account")], f[("hubspot", "associations")]
    # a HubSpot company matched to an Account by domain or contacts gets another domain
    matched = co.dropna(subset=["hubspot_id", "salesforce_id"])
    by_domain = matched[matched["salesforce_method"] == "domain"]
    target = (by_domain if len(by_domain) else matched)["hubspot_id"].iloc[0]
    new_hs = hs_co[hs_co["id"] == target].assign(domain="moved-away.example", website=None,
                                                 modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # a brand-new Account whose website equals a free HubSpot company's domain
    free = co[co["hubspot_id"].notna() & co["salesforce_id"].isna() & co["domain"].notna()]
    new_acc = _row(acc, id="001NEWACCOUNT0AAAA", Website="https://www." + free["domain"].iloc[0] + "/about")
    # an SF Contact moves to another Account
    sf = f[("salesforce", "Contact")]
    mover = sf[sf["AccountId"].notna()].iloc[[3]]
    other = acc[acc["id"] != mover["AccountId"].iloc[0]]["id"].iloc[7]
    moved = mover.assign(AccountId=other, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # a HubSpot contact->company association removed, another contact moves company (remove + add)
    cc = assocs[(assocs["from_type"] == "contacts") & (assocs["to_type"] == "companies")]
    removed = cc.iloc[[2]].assign(deleted=True, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    mv = cc.iloc[[11]]
    new_company = cc["to_id"][cc["to_id"] != mv["to_id"].iloc[0]].iloc[20]
    mv_gone = mv.assign(deleted=True, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    mv_new = mv.assign(id="contacts:" + mv["from_id"] + ":companies:" + new_company + ":279", to_id=new_company,
                       modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # a deal->contact association removed
    dc = assocs[(assocs["from_type"] == "deals") & (assocs["to_type"] == "contacts")]
    dc_gone = dc.iloc[[4]].assign(deleted=True, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # a HubSpot deal becomes closed won
    deals = f[("hubspot", "deals")]
    open_deal = deals[(deals["pipeline"] == "default") & ~deals["dealstage"].isin(["closedwon", "closedlost"])]
    won = open_deal.iloc[[0]].assign(dealstage="closedwon", modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # an Opportunity moves to another Account (deal->company)
    opp = f[("salesforce", "Opportunity")]
    opp_moved = opp[opp["AccountId"].notna()].iloc[[5]].assign(
        AccountId=other, modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    # a HubSpot contact's lifecycle stage changes (COM-4 follows to its company)
    hs = f[("hubspot", "contacts")]
    hs_cc = hs[hs["id"].isin(cc["from_id"]) & (hs["lifecyclestage"] == "subscriber")].iloc[[0]].assign(
        lifecyclestage="evangelist", modified_at=pd.Timestamp("2026-07-06", tz="UTC"))
    delta = Mirrors({
        ("hubspot", "companies"): new_hs, ("salesforce", "Account"): new_acc,
        ("salesforce", "Contact"): moved, ("salesforce", "Opportunity"): opp_moved,
        ("hubspot", "associations"): pd.concat([removed, mv_gone, mv_new, dc_gone], ignore_index=True),
        ("hubspot", "deals"): won, ("hubspot", "contacts"): hs_cc,
    })
    inc = incremental_transform(before, delta, links, settings)
    full = run_transform(_apply(universe_frames, delta), links, settings)
    _assert_equal(inc, full)
    # the deltas did change these outputs (the comparison is not vacuous)
    for name in ("contact_company", "deal_company", "deal_contact", "lifecycle", "company_lifecycle",
                 "account_candidates"):
        assert not _norm(getattr(before, name)).equals(_norm(getattr(full, name))), name
    assert not _norm(before.companies.identities).equals(_norm(full.companies.identities))
    # and a second incremental run on the first one's result still equals a full run
    delta2 = Mirrors({("hubspot", "companies"): new_hs.assign(domain=hs_co["domain"].iloc[0], website=None,
                                                              modified_at=pd.Timestamp("2026-07-07", tz="UTC")),
                      ("salesforce", "Account"): new_acc.assign(deleted=True,
                                                                modified_at=pd.Timestamp("2026-07-07", tz="UTC"))})
    # with a new company link (COM-3: an existing link wins over contacts and domain)
    unmatched = full.companies.identities.dropna(subset=["salesforce_id"])
    unmatched = unmatched[unmatched["hubspot_id"].isna()]["salesforce_id"].iloc[0]
    free_hs = full.companies.identities
    free_hs = free_hs[free_hs["hubspot_id"].notna() & free_hs["salesforce_id"].isna()]["hubspot_id"].iloc[-1]
    links2 = pd.concat([links, pd.DataFrame({"kind": ["company"], "hubspot_id": [free_hs],
                                             "salesforce_id": [unmatched], "salesforce_type": ["Account"]})],
                       ignore_index=True)
    inc2 = incremental_transform(inc, delta2, links2, settings)
    full2 = run_transform(_apply(_apply(universe_frames, delta), delta2), links2, settings)
    _assert_equal(inc2, full2)
    assert (full2.companies.identities["salesforce_method"] == "link").sum() == 1


def test_a_name_edit_matches_no_company_again(universe_frames):
    """Invariant 6 (issue 11): contacts whose edit changes no email, link or association (a name) keep their
    identities, so no company is matched again (COM-1/COM-3) and no identity association rebuilt (DEAL-6): the
    change is their own rows; the result still equals a full run's."""
    f = universe_frames.frames
    before = run_transform(universe_frames)
    assocs = f[("hubspot", "associations")]
    with_company = set(assocs.loc[(assocs["from_type"] == "contacts") & (assocs["to_type"] == "companies"),
                                  "from_id"])
    hs = f[("hubspot", "contacts")]
    edited = hs[hs["id"].isin(with_company)].iloc[:25].assign(firstname="Renamed",
                                                               modified_at=pd.Timestamp("2026-07-07", tz="UTC"))
    sf = f[("salesforce", "Contact")]
    sf_edited = sf[sf["AccountId"].notna()].iloc[:25].assign(FirstName="Renamed",
                                                             modified_at=pd.Timestamp("2026-07-07", tz="UTC"))
    delta = Mirrors({("hubspot", "contacts"): edited, ("salesforce", "Contact"): sf_edited})
    changes = incremental_changes(before, delta)
    assert "company_identities" not in changes  # no company to match again
    for name in ("contact_company", "deal_contact"):
        assert changes[name].removed.empty and changes[name].added.empty, name
    # the edited records' own rows are rewritten: their modification times
    assert set(changes["contact_members"].added["id"]) >= set(edited["id"]) | set(sf_edited["id"])
    _assert_equal(incremental_transform(before, delta), run_transform(_apply(universe_frames, delta)))

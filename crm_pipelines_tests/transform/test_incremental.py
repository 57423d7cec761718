"""Incremental transform equals a full recompute (Invariant 6; CON-2/CON-4/CON-11 identities, rollups, DEAL-2)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.bench.transform import changed_records
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.incremental import incremental_transform
from crm_pipelines.transform.pipeline import TransformResult, run_transform


def _apply(base: Mirrors, delta: Mirrors) -> Mirrors:
    frames = dict(base.frames)
    for key, f in delta.frames.items():
        old = frames[key]
        frames[key] = pd.concat([old[~old["id"].isin(f["id"])], f], ignore_index=True)
    return Mirrors(frames)


def _same(a: pd.DataFrame, b: pd.DataFrame, by: list[str]) -> bool:
    def norm(df):
        return df.sort_values(by).reset_index(drop=True).astype("string")

    return norm(a).equals(norm(b))


def _assert_equal(inc: TransformResult, full: TransformResult) -> None:
    assert _same(inc.contacts.identities, full.contacts.identities, ["identity_id"])
    assert _same(inc.contacts.members, full.contacts.members, ["crm", "id"])
    assert _same(inc.contacts.findings, full.contacts.findings, ["crm", "id"])
    assert _same(inc.rollups, full.rollups, ["contact_id"])
    assert _same(inc.deal_stages, full.deal_stages, ["crm", "id"])
    assert _same(inc.deals, full.deals, ["identity_id"])
    assert _same(inc.field_findings, full.field_findings, ["crm", "object", "id", "field"])
    for key, frame in full.fields.items():
        assert _same(inc.fields[key], frame, ["id"]), key


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

"""The contact rollups of SPEC's rollup table (seed 004)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.bench.universe_frames import HS_CONTACT
from crm_pipelines.transform.rollups import contact_rollups, hubspot_deal_contacts, hubspot_deal_facts
from crm_pipelines_tests.transform.conftest import mirrors

PIPES = [
    {"id": "p:won", "pipeline_id": "p", "stage_id": "won", "is_closed": True, "is_won": True},
    {"id": "p:lost", "pipeline_id": "p", "stage_id": "lost", "is_closed": True, "is_won": False},
    {"id": "p:open", "pipeline_id": "p", "stage_id": "open", "is_closed": False, "is_won": False},
]


def _deal(id_, stage, created, close, amount):
    return {"id": id_, "pipeline": "p", "dealstage": stage, "createdate": created, "closedate": close,
            "amount": amount}


def _assoc(deal, contact):
    return {"id": f"{deal}-{contact}", "from_type": "deals", "from_id": deal, "to_type": "contacts", "to_id": contact}


def _rollups(deals, assocs):
    m = mirrors(hubspot__deals=deals, hubspot__pipelines=PIPES, hubspot__associations=assocs)
    return contact_rollups(hubspot_deal_facts(m), hubspot_deal_contacts(m)).set_index("contact_id")


def test_rollups_recent_deal_amount_is_the_most_recently_created_won_deal_not_the_most_recently_closed():
    """Rollup table: recent_deal_amount follows the create date, recent_deal_close_date the close date."""
    r = _rollups([
        _deal("d1", "won", "2021-03-01T10:00:00.000Z", "2022-06-30T00:00:00.000Z", "5000"),  # closed last
        _deal("d2", "won", "2022-01-10T09:30:00.000Z", "2022-02-15T00:00:00.000Z", "1200"),  # created last
        _deal("d3", "lost", "2023-01-01T00:00:00.000Z", "2023-05-01T00:00:00.000Z", "999"),
        _deal("d4", "open", "2020-05-05T00:00:00.000Z", None, "50"),
    ], [_assoc(d, "c1") for d in ("d1", "d2", "d3", "d4")])
    row = r.loc["c1"]
    assert row["num_associated_deals"] == 4
    assert row["first_deal_created_date"] == pd.Timestamp("2020-05-05", tz="UTC")
    assert row["recent_deal_close_date"] == pd.Timestamp("2022-06-30", tz="UTC")
    assert row["recent_deal_amount"] == 1200
    assert row["total_revenue"] == 6200


def test_rollups_without_won_deals_leave_won_properties_empty():
    r = _rollups([_deal("d1", "lost", "2021-01-01T00:00:00Z", "2021-02-01T00:00:00Z", "10")], [_assoc("d1", "c1")])
    row = r.loc["c1"]
    assert row["num_associated_deals"] == 1
    assert pd.isna(row["recent_deal_close_date"]) and pd.isna(row["recent_deal_amount"])
    assert pd.isna(row["total_revenue"])


def test_rollups_association_read_in_both_directions_counts_once():
    back = {"id": "x", "from_type": "contacts", "from_id": "c1", "to_type": "deals", "to_id": "d1"}
    r = _rollups([_deal("d1", "won", "2021-01-01T00:00:00Z", "2021-02-01T00:00:00Z", "10")],
                 [_assoc("d1", "c1"), back])
    assert r.loc["c1", "num_associated_deals"] == 1 and r.loc["c1", "total_revenue"] == 10


def test_rollups_on_the_generated_universe_showcase_person(universe_frames):
    """Person 0 of the universe: won deals 5000 (closed last) and 1200 (created last)."""
    r = contact_rollups(hubspot_deal_facts(universe_frames), hubspot_deal_contacts(universe_frames))
    row = r.set_index("contact_id").loc[str(HS_CONTACT)]
    assert row["recent_deal_amount"] == 1200
    assert row["recent_deal_close_date"] == pd.Timestamp("2022-06-30", tz="UTC")


def test_rollups_only_for_live_contacts_in_a_full_and_an_incremental_run():
    """Rollup table (issue 11): an association naming a deleted or never-mirrored HubSpot contact gives no
    rollup row (HubSpot has no record to carry it); deleting a contact later removes its row incrementally."""
    from crm_pipelines.transform.incremental import incremental_transform
    from crm_pipelines.transform.pipeline import run_transform

    deals = [_deal("d1", "won", "2021-01-01T00:00:00Z", "2021-02-01T00:00:00Z", "10")]
    contacts = [{"id": "c1", "email": "c1@example.com"}, {"id": "c2", "email": "c2@example.com", "deleted": True}]
    assocs = [_assoc("d1", "c1"), _assoc("d1", "c2"), _assoc("d1", "c3")]  # c3: not in the mirror at all
    m = mirrors(hubspot__contacts=contacts, hubspot__deals=deals, hubspot__pipelines=PIPES,
                hubspot__associations=assocs)
    full = run_transform(m)
    assert full.rollups["contact_id"].tolist() == ["c1"]

    gone = mirrors(hubspot__contacts=[{"id": "c1", "email": "c1@example.com", "deleted": True}])
    after = incremental_transform(full, gone)
    assert after.rollups.empty
    assert run_transform(m.replace(hubspot__contacts=gone.frames[("hubspot", "contacts")])).rollups.empty


def test_a_stage_is_won_however_the_api_spells_its_metadata():
    """DEAL-2 / rollups (issue 11): closed-won comes from the pipeline's stage metadata, whether probability
    and isClosed arrive as strings ("1", "1.0", "true") or JSON numbers and booleans."""
    from crm_pipelines.defs.unified.mirrors import _hubspot_stages

    spellings = [("1", "true"), ("1.0", "true"), (1, True), (1.0, "TRUE"), ("0.2", "false"), (1, False), (None, True)]
    record = {"id": "deals:p", "label": "P", "modified_at": pd.Timestamp("2024-01-01", tz="UTC"), "deleted": False,
              "stages": [{"id": f"s{i}", "label": f"S{i}", "metadata": {"probability": p, "isClosed": c}}
                         for i, (p, c) in enumerate(spellings)]}
    stages = _hubspot_stages(pd.DataFrame([record]))
    assert stages["is_won"].tolist() == [True, True, True, True, False, False, False]

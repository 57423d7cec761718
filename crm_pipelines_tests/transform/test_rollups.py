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

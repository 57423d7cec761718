"""ROLL-1's drift check over frames: a figure one side has and the other leaves blank is a difference
reported with both values (a blank date crashed the check before), and equal figures are none."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform.rollup_check import rollup_drift


def test_roll_1_a_date_hubspot_leaves_blank_is_reported_not_a_crash() -> None:
    ours = pd.DataFrame({
        "contact_id": ["1", "2"], "num_associated_deals": [1, 0],
        "first_deal_created_date": pd.to_datetime(["2026-01-02T03:04:05Z", None], utc=True),
        "recent_deal_close_date": pd.to_datetime([None, None], utc=True),
        "recent_deal_amount": [None, None], "total_revenue": [0.0, 0.0],
    })  # fmt: skip
    hubspot = pd.DataFrame({
        "id": ["1", "2"], "num_associated_deals": ["1", "0"], "first_deal_created_date": [None, None],
        "recent_deal_close_date": [None, None], "recent_deal_amount": [None, None], "total_revenue": ["0", None],
    })  # fmt: skip
    out = rollup_drift(ours, hubspot)
    assert not out.passed and out.count == 1 and out.by == {"first_deal_created_date": 1}
    assert out.sample == [{"contact_id": "1", "figure": "first_deal_created_date",
                           "ours": "2026-01-02T03:04:05+00:00", "hubspot": None}]

"""The merge's input from the ``unified`` field values, links and baselines (``sync/field_inputs.py``): values
compared like for like whatever type they were read back as (CONF-5: no spurious change), rules per field
(CONF-6), a missing baseline marked as such."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import FieldRule
from crm_pipelines.sync.field_inputs import merge_inputs
from crm_pipelines.sync.merge import merge_fields

T0 = pd.Timestamp("2026-12-01T10:00:00Z")


def _frames():
    links = pd.DataFrame({"hubspot_id": ["1", "2"], "other_id": ["003A", "003B"]})
    hubspot = pd.DataFrame({"id": ["1", "2", "3"], "modified_at": [T0, T0, T0],
                            "jobtitle": ["CTO", "VP", "x"], "amount": [100.0, 5.5, None], "phone": ["", None, "1"]})
    other = pd.DataFrame({"id": ["003A", "003B"], "modified_at": [T0 - pd.Timedelta(days=1)] * 2,
                          "jobtitle": ["Engineer", "VP"], "amount": ["100", 5.5], "phone": [None, "555"]})
    base = pd.DataFrame({"hubspot_id": ["1", "1"], "field": ["jobtitle", "amount"], "value": ["Engineer", "100"]})
    return links, hubspot, other, base


def test_merge_inputs_pair_each_linked_record_field_by_field():
    links, hubspot, other, base = _frames()
    rows = merge_inputs(links, hubspot, other, ["jobtitle", "amount", "phone", "unmapped"], base,
                        rules={"phone": FieldRule.DONT_SYNC}, kinds={"amount": "number"})
    assert len(rows) == 6  # 2 linked records x 3 fields both sides map; the unlinked HubSpot record is absent
    by = rows.set_index(["hubspot_id", "field"])
    assert by.loc[("1", "amount"), ["hubspot_value", "other_value"]].tolist() == ["100", "100"]  # 100.0 == "100"
    assert by.loc[("1", "phone"), "hubspot_value"] is None  # blank
    assert by.loc[("1", "jobtitle"), "baseline_value"] == "Engineer" and by.loc[("1", "jobtitle"), "has_baseline"]
    assert not by.loc[("2", "jobtitle"), "has_baseline"]
    assert by.loc[("1", "phone"), "rule"] == "dont_sync"

    merged = merge_fields(rows).set_index(["hubspot_id", "field"])
    # HubSpot's title changed since the baseline: it goes to the other CRM; the amount is the same number
    assert merged.loc[("1", "jobtitle"), "write_other"] and merged.loc[("1", "jobtitle"), "value"] == "CTO"
    assert not merged.loc[("1", "amount"), ["write_hubspot", "write_other"]].any()
    # no baseline, HubSpot later: the phone stays unsynced (don't sync), the equal title writes nothing
    assert not merged.loc[("2", "phone"), ["write_hubspot", "write_other"]].any()
    assert not merged.loc[("2", "jobtitle"), ["write_hubspot", "write_other"]].any()

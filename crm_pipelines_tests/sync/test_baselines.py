"""Baselines in the state database (``state/baselines.py``), both backends: the value last synced per linked
record and field, and the merge reading them back (CONF-5 no echo, Invariant 2)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.state import baselines
from crm_pipelines.sync.merge import merge_fields

T0 = pd.Timestamp("2026-12-01T10:00:00Z")


def test_a_baseline_is_one_row_per_record_and_field_and_the_last_write_sets_it(state_engine):
    rows = pd.DataFrame({"kind": "contact", "hubspot_id": ["101", "101", "102"], "other_crm": "salesforce",
                         "field": ["jobtitle", "phone", "jobtitle"], "value": ["CTO", None, "VP"]})
    with state_engine.begin() as conn:
        assert baselines.record(conn, rows, write_id="w1", at=T0) == 3
    with state_engine.begin() as conn:  # the next write of one field replaces its baseline only
        baselines.record(conn, rows.iloc[[0]].assign(value="CEO"), write_id="w2", at=T0 + pd.Timedelta(minutes=1))
    got = baselines.load(state_engine, "contact", "salesforce", ["101", "102", "999"])
    got = got.sort_values(["hubspot_id", "field"]).reset_index(drop=True)
    assert got[["hubspot_id", "field", "value", "write_id"]].values.tolist() == [
        ["101", "jobtitle", "CEO", "w2"], ["101", "phone", None, "w1"], ["102", "jobtitle", "VP", "w1"]]
    assert got.loc[0, "synced_at"] == T0 + pd.Timedelta(minutes=1)
    assert baselines.load(state_engine, "contact", "dynamics", ["101"]).empty  # per target CRM


def test_conf5_a_value_the_sync_wrote_is_not_read_back_as_a_change(state_engine):
    # HubSpot's title changed; the merge writes it to Salesforce, and the write's baseline is recorded
    fields = pd.DataFrame({"kind": "contact", "hubspot_id": ["101"], "other_crm": "salesforce", "field": "jobtitle",
                           "hubspot_value": "CTO", "other_value": "Engineer", "baseline_value": "Engineer",
                           "has_baseline": True, "hubspot_changed_at": T0,
                           "other_changed_at": T0 - pd.Timedelta(days=1), "rule": "two_way"})  # fmt: skip
    first = merge_fields(fields)
    assert first["write_other"].tolist() == [True]
    with state_engine.begin() as conn:
        baselines.record(conn, first.loc[first["write_other"]], write_id="w1")
    # next run: Salesforce now holds the written value, modified after HubSpot's change (by the sync)
    stored = baselines.load(state_engine, "contact", "salesforce", ["101"])
    after = fields.assign(other_value="CTO", other_changed_at=T0 + pd.Timedelta(minutes=1))
    after = after.drop(columns="baseline_value").merge(
        stored[["hubspot_id", "field", "value"]].rename(columns={"value": "baseline_value"}),
        on=["hubspot_id", "field"], how="left")
    second = merge_fields(after)
    assert not second["write_hubspot"].any() and not second["write_other"].any()

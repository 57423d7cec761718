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


def test_conf5_the_inputs_say_when_each_copy_was_read_and_which_write_set_the_baseline():
    """What the merge needs to tell a copy read before the sync's own write from a change: each side's read
    time (the mirror's ``extracted_at``), and per baseline when it was set and the side its write went to."""
    links, hubspot, other, base = _frames()
    hubspot["extracted_at"] = T0 + pd.Timedelta(minutes=1)
    other["extracted_at"] = T0 + pd.Timedelta(minutes=9)
    base = base.assign(synced_at=T0 + pd.Timedelta(minutes=5), written_to=["salesforce", "hubspot"])
    rows = merge_inputs(links, hubspot, other, ["jobtitle", "amount"], base, kinds={"amount": "number"})
    by = rows.set_index(["hubspot_id", "field"])
    assert by.loc[("1", "jobtitle"), ["baseline_at", "baseline_written_to"]].tolist() == [
        T0 + pd.Timedelta(minutes=5), "other"]
    assert by.loc[("1", "amount"), "baseline_written_to"] == "hubspot"
    assert by.loc[("1", "jobtitle"), "hubspot_read_at"] == T0 + pd.Timedelta(minutes=1)
    assert by.loc[("2", "jobtitle"), "other_read_at"] == T0 + pd.Timedelta(minutes=9)
    unsynced = by.loc[("2", "jobtitle")]
    assert pd.isna(unsynced["baseline_at"]) and unsynced["baseline_written_to"] is None
    # the title's baseline came from a write to the other CRM: HubSpot's copy replaced nothing, its change moves
    merged = merge_fields(rows).set_index(["hubspot_id", "field"])
    assert merged.loc[("1", "jobtitle"), "write_other"] and merged.loc[("1", "jobtitle"), "value"] == "CTO"


def test_conf2_a_fields_own_change_time_decides_the_later_change_not_its_records():
    """HubSpot changed the first name at 10:00 and the phone at 10:20; Salesforce changed the first name at
    10:10. By the record's time HubSpot's name looks later (10:20); by the field's own history it is not:
    Salesforce's later change wins (CONF-2)."""
    links = pd.DataFrame({"hubspot_id": ["1"], "other_id": ["003A"]})
    hubspot = pd.DataFrame({"id": ["1"], "modified_at": [T0 + pd.Timedelta(minutes=20)],
                            "firstname": ["Hubert"], "phone": ["555 0100"]})  # fmt: skip
    other = pd.DataFrame({"id": ["003A"], "modified_at": [T0 + pd.Timedelta(minutes=10)],
                          "firstname": ["Salvador"], "phone": ["555 0199"]})  # fmt: skip
    base = pd.DataFrame({"hubspot_id": ["1", "1"], "field": ["firstname", "phone"], "value": ["Ann", "555 0199"]})
    history = pd.DataFrame({"id": [1, 1, 1], "field": ["firstname", "firstname", "phone"],
                            "changed_at": [T0 - pd.Timedelta(days=3), T0, T0 + pd.Timedelta(minutes=20)]})

    by_record = merge_fields(merge_inputs(links, hubspot, other, ["firstname", "phone"], base)).set_index("field")
    assert by_record.loc["firstname", "winner"] == "hubspot"  # what the record's time alone says

    rows = merge_inputs(links, hubspot, other, ["firstname", "phone"], base, hubspot_field_times=history)
    by = rows.set_index("field")
    assert by.loc["firstname", "hubspot_changed_at"] == T0  # the latest history entry of the field
    assert by.loc["phone", "hubspot_changed_at"] == T0 + pd.Timedelta(minutes=20)
    merged = merge_fields(rows).set_index("field")
    assert merged.loc["firstname", "winner"] == "other" and merged.loc["firstname", "value"] == "Salvador"
    assert merged.loc["firstname", "decided_by"] == "CONF-2 both changed: the later change wins"
    assert merged.loc["phone", "write_other"] and merged.loc["phone", "value"] == "555 0100"  # only HubSpot changed

    # a field without history keeps its record's time; the other side's field times work the same way
    rows = merge_inputs(links, hubspot, other, ["firstname", "phone"], base,
                        other_field_times=pd.DataFrame({"id": ["003A"], "field": ["firstname"],
                                                        "changed_at": [T0 + pd.Timedelta(minutes=30)]}))
    by = rows.set_index("field")
    assert by.loc["firstname", "other_changed_at"] == T0 + pd.Timedelta(minutes=30)
    assert by.loc["phone", "other_changed_at"] == T0 + pd.Timedelta(minutes=10)
    assert by.loc["phone", "hubspot_changed_at"] == T0 + pd.Timedelta(minutes=20)


def test_conf5_a_plan_that_keeps_writes_only_skips_the_fields_equal_as_read_and_writes_the_same():
    """A first sync merges millions of fields, most equal on both sides: ``differing_only`` leaves out the
    fields whose values as read are the same (the merge writes nothing there, with or without a baseline,
    CONF-5) and keeps every field that may differ: text that differs only by spaces, a number read as text on
    one side, values of two types that Python holds equal (``1 == 1.0 == True``) but text does not."""
    links = pd.DataFrame({"hubspot_id": ["1", "2", "3"], "other_id": ["A", "B", "C"]})
    hubspot = pd.DataFrame({"id": ["1", "2", "3"], "modified_at": [T0] * 3, "jobtitle": ["CTO", "VP ", None],
                            "amount": [100.0, 5.5, 7.0], "flag": [1, True, None], "city": ["Oslo", None, None]},
                           ).astype(object)
    other = pd.DataFrame({"id": ["A", "B", "C"], "modified_at": [T0 - pd.Timedelta(days=1)] * 3,
                          "jobtitle": ["CTO", "VP", None], "amount": [100.0, "5.5", 8.0], "flag": [1.0, 1, None],
                          "city": ["Oslo", None, "Bergen"]}).astype(object)
    base = pd.DataFrame({"hubspot_id": ["1"], "field": ["jobtitle"], "value": ["CEO"]})
    fields = ["jobtitle", "amount", "flag", "city"]
    every = merge_inputs(links, hubspot, other, fields, base, kinds={"amount": "number"})
    some = merge_inputs(links, hubspot, other, fields, base, kinds={"amount": "number"}, differing_only=True)
    kept = set(zip(some["hubspot_id"], some["field"], strict=True))
    # equal as read: 1's title (despite its baseline) and city, 3's title, 2's city (blank on both sides); the
    # amounts (text on one side) and flags (numbers and booleans) are read in mixed types: all kept
    assert kept == {("2", "jobtitle"), ("1", "amount"), ("2", "amount"), ("3", "amount"), ("1", "flag"),
                    ("2", "flag"), ("3", "flag"), ("3", "city")}
    # record-major, as ``merge_inputs`` always gives them, and the same writes as the merge of every field
    assert some["hubspot_id"].tolist() == sorted(some["hubspot_id"])
    writes = merge_fields(every)
    writes = writes[writes["write_hubspot"] | writes["write_other"]]
    merged = merge_fields(some)
    merged = merged[merged["write_hubspot"] | merged["write_other"]]
    assert merged.reset_index(drop=True).astype(object).equals(writes.reset_index(drop=True).astype(object))
    # 1 and 1.0, True and 1 are different text (a skip by Python's equality would have lost these writes)
    assert set(zip(writes["hubspot_id"], writes["field"], strict=True)) == {("3", "amount"), ("3", "city"),
                                                                            ("1", "flag"), ("2", "flag")}

"""The three-way merge (``sync/merge.py``), rule by rule (SPEC CONF-1..6, CON-1): what each side holds after
the sync, which side is written, and which rule decided."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction, FieldRule
from crm_pipelines.sync import merge
from crm_pipelines.sync.merge import MergeSettings, merge_fields

T0 = pd.Timestamp("2026-12-01T10:00:00Z")


def _field(hubspot, other, baseline, hs_minutes=None, other_minutes=None, rule=FieldRule.TWO_WAY,
           has_baseline=True) -> dict:
    return {"hubspot_value": hubspot, "other_value": other, "baseline_value": baseline, "has_baseline": has_baseline,
            "hubspot_changed_at": None if hs_minutes is None else T0 + pd.Timedelta(minutes=hs_minutes),
            "other_changed_at": None if other_minutes is None else T0 + pd.Timedelta(minutes=other_minutes),
            "rule": rule.value}  # fmt: skip


def _one(settings: MergeSettings | None = None, **kw) -> dict:
    return merge_fields(pd.DataFrame([_field(**kw)]), settings).iloc[0].to_dict()


def test_conf5_a_field_unchanged_since_the_last_sync_writes_nothing():
    out = _one(hubspot="Engineer", other="Engineer", baseline="Engineer", hs_minutes=0, other_minutes=0)
    assert (out["write_hubspot"], out["write_other"], out["winner"]) == (False, False, None)
    assert out["decided_by"] == merge.UNCHANGED


def test_conf2_a_change_on_one_side_moves_to_the_other():
    out = _one(hubspot="CTO", other="Engineer", baseline="Engineer", hs_minutes=3, other_minutes=0)
    assert (out["value"], out["write_other"], out["write_hubspot"]) == ("CTO", True, False)
    assert out["decided_by"] == merge.ONE_SIDE and not out["conflict"]
    back = _one(hubspot="Engineer", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=3)
    assert (back["value"], back["write_hubspot"], back["write_other"]) == ("VP", True, False)


def test_conf1_both_changed_2_minutes_apart_is_a_conflict_won_by_the_default_app():
    kw = dict(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=2)
    out = _one(**kw)  # HubSpot is the default app unless set otherwise (CONF-2)
    assert out["conflict"] and out["winner"] == "hubspot" and out["value"] == "CTO"
    assert (out["write_other"], out["write_hubspot"]) == (True, False)
    assert out["decided_by"] == merge.CONFLICT
    other_default = _one(MergeSettings(default_app="other"), **kw)
    assert other_default["winner"] == "other" and other_default["value"] == "VP" and other_default["write_hubspot"]


def test_conf1_the_window_is_a_setting():
    kw = dict(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=8)
    assert not _one(**kw)["conflict"]
    assert _one(MergeSettings(window_minutes=10), **kw)["conflict"]


def test_conf2_both_changed_10_minutes_apart_the_later_change_wins():
    out = _one(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=10)
    assert not out["conflict"] and out["winner"] == "other" and out["value"] == "VP"
    assert out["write_hubspot"] and not out["write_other"]
    assert out["decided_by"] == merge.LATEST
    earlier_other = _one(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=10, other_minutes=0)
    assert earlier_other["winner"] == "hubspot" and earlier_other["write_other"]


def test_conf3_a_blank_never_overwrites_a_value():
    # HubSpot's value was cleared: the other side keeps its value, and HubSpot gets it back
    cleared = _one(hubspot=None, other="Engineer", baseline="Engineer", hs_minutes=5, other_minutes=0)
    assert cleared["value"] == "Engineer" and not cleared["write_other"] and cleared["write_hubspot"]
    assert cleared["decided_by"] == merge.NEVER_BLANK
    # a conflict won by a blank (default app HubSpot, blank): the other's value stays
    won_blank = _one(hubspot="", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=1)
    assert won_blank["value"] == "VP" and not won_blank["write_other"]
    # never a blank written anywhere
    out = merge_fields(pd.DataFrame([_field(None, "x", "y", 1, 0), _field("", "x", "x", 1, 0)]))
    assert not (out["write_other"] & out["value"].isna()).any()


def test_conf4_a_one_way_connection_never_writes_its_source():
    to_other = MergeSettings(direction=Direction.HUBSPOT_TO_OTHER, default_app="other")
    # the target side's edit is not carried back, even winning on time
    out = _one(to_other, hubspot="Engineer", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=9)
    assert not out["write_hubspot"] and not out["write_other"]
    # within the window the source is the default app (CONF-2), whatever default_app says
    conflict = _one(to_other, hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=1)
    assert conflict["winner"] == "hubspot" and conflict["write_other"] and not conflict["write_hubspot"]
    to_hubspot = MergeSettings(direction=Direction.OTHER_TO_HUBSPOT)
    out = _one(to_hubspot, hubspot="CTO", other="Engineer", baseline="Engineer", hs_minutes=3, other_minutes=0)
    assert not out["write_other"] and not out["write_hubspot"]
    # CONF-6 rules do not override it either
    always = _one(to_hubspot, hubspot="CTO", other="VP", baseline="x", rule=FieldRule.ALWAYS_HUBSPOT)
    assert not always["write_other"]


def test_conf6_dont_sync_and_set_on_create_only_never_write_a_linked_record():
    for rule, label in ((FieldRule.DONT_SYNC, merge.DONT_SYNC), (FieldRule.SET_ON_CREATE_ONLY, merge.CREATE_ONLY)):
        out = _one(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=9, rule=rule)
        assert not out["write_hubspot"] and not out["write_other"], rule
        assert out["decided_by"] == label


def test_conf6_always_an_app_is_one_way_from_it_whoever_changed_last():
    out = _one(hubspot="CTO", other="VP", baseline="Engineer", hs_minutes=0, other_minutes=30,
               rule=FieldRule.ALWAYS_HUBSPOT)
    assert out["value"] == "CTO" and out["write_other"] and not out["write_hubspot"]
    # the app read from is never written, not even when it is blank (CONF-3 keeps the other's value)
    blank = _one(hubspot=None, other="VP", baseline="VP", hs_minutes=0, rule=FieldRule.ALWAYS_HUBSPOT)
    assert not blank["write_hubspot"] and not blank["write_other"]
    other = _one(hubspot="CTO", other="VP", baseline="CTO", other_minutes=0, hs_minutes=30, rule=FieldRule.ALWAYS_OTHER)
    assert other["value"] == "VP" and other["write_hubspot"] and not other["write_other"]


def test_conf6_prefer_an_app_unless_blank():
    out = _one(hubspot="CTO", other="VP", baseline="x", hs_minutes=0, other_minutes=30,
               rule=FieldRule.PREFER_HUBSPOT_UNLESS_BLANK)
    assert out["value"] == "CTO" and out["write_other"]
    blank = _one(hubspot=None, other="VP", baseline="x", rule=FieldRule.PREFER_HUBSPOT_UNLESS_BLANK)
    assert blank["value"] == "VP" and blank["write_hubspot"] and not blank["write_other"]
    assert "blank" in blank["decided_by"]
    other = _one(hubspot="CTO", other="VP", baseline="x", rule=FieldRule.PREFER_OTHER_UNLESS_BLANK)
    assert other["value"] == "VP" and other["write_hubspot"]


def test_a_first_sync_without_baseline_takes_the_later_value_or_the_default_app_within_the_window():
    later = _one(hubspot="CTO", other="VP", baseline=None, has_baseline=False, hs_minutes=0, other_minutes=60)
    assert later["value"] == "VP" and later["write_hubspot"]
    close = _one(hubspot="CTO", other="VP", baseline=None, has_baseline=False, hs_minutes=0, other_minutes=1)
    assert close["value"] == "CTO" and close["conflict"]
    equal = _one(hubspot="CTO", other="CTO", baseline=None, has_baseline=False, hs_minutes=0, other_minutes=1)
    assert not equal["write_hubspot"] and not equal["write_other"]


def test_conf5_applying_a_merge_and_its_baselines_leaves_nothing_to_write():
    """No echo over many random fields, every rule and direction: once the writes are applied and the
    baselines record the synced value, merging again writes nothing."""
    rng = np.random.default_rng(7)
    n = 5_000
    pool = np.array([None, "", "a", "b", "c"], dtype=object)
    rules = [r.value for r in FieldRule]
    frame = pd.DataFrame({
        "id": np.arange(n),
        "hubspot_value": rng.choice(pool, n), "other_value": rng.choice(pool, n),
        "baseline_value": rng.choice(pool, n), "has_baseline": rng.random(n) < 0.8,
        "hubspot_changed_at": T0 + pd.to_timedelta(rng.integers(0, 20, n), unit="min"),
        "other_changed_at": T0 + pd.to_timedelta(rng.integers(0, 20, n), unit="min"),
        "rule": rng.choice(rules, n),
    })  # fmt: skip
    for direction in Direction:
        settings = MergeSettings(direction=direction)
        first = merge_fields(frame, settings)
        after = frame.copy()
        after.loc[first["write_hubspot"], "hubspot_value"] = first.loc[first["write_hubspot"], "value"]
        after.loc[first["write_other"], "other_value"] = first.loc[first["write_other"], "value"]
        synced = first["write_hubspot"] | first["write_other"]
        # the baseline is what the sync wrote (Invariant 2), on the records it wrote
        after.loc[synced, "baseline_value"] = first.loc[synced, "value"]
        after.loc[synced, "has_baseline"] = True
        second = merge_fields(after, settings)
        again = second[second["write_hubspot"] | second["write_other"]]
        assert again.empty, (direction, again.head())
        assert synced.sum() > n / 10  # the first merge did write: the test has teeth


def test_conf5_a_copy_read_before_the_sync_wrote_its_side_is_what_the_write_replaced():
    """The sync wrote "VP" to HubSpot (the baseline, set at minute 10) from the other CRM's edit; HubSpot's copy
    in the mirror was read at minute 5, before that write: it still says "CTO". That is the value the write
    replaced, not a user's change, so nothing is written back (before this rule, "CTO" moved to the other CRM
    and undid the user's edit). Read after the write, the same value is a change again."""
    written = {"baseline_at": T0 + pd.Timedelta(minutes=10), "baseline_written_to": "hubspot",
               "other_read_at": T0 + pd.Timedelta(minutes=11)}  # fmt: skip
    stale = {**_field(hubspot="CTO", other="VP", baseline="VP", hs_minutes=1, other_minutes=8),
             **written, "hubspot_read_at": T0 + pd.Timedelta(minutes=5)}
    out = merge_fields(pd.DataFrame([stale])).iloc[0]
    assert (out["write_hubspot"], out["write_other"], out["decided_by"]) == (False, False, merge.UNCHANGED)
    fresh = merge_fields(pd.DataFrame([{**stale, "hubspot_read_at": T0 + pd.Timedelta(minutes=12),
                                        "hubspot_changed_at": T0 + pd.Timedelta(minutes=11)}])).iloc[0]
    assert (fresh["value"], fresh["write_other"], fresh["decided_by"]) == ("CTO", True, merge.ONE_SIDE)


def test_conf5_only_the_side_the_write_went_to_can_hold_a_replaced_value():
    """The baseline was set by a write to the other CRM; HubSpot's copy, read before it, differs from it: HubSpot
    changed (the sync did not write HubSpot, so its copy replaced nothing), and the change moves."""
    row = {**_field(hubspot="CTO", other="VP", baseline="VP", hs_minutes=9, other_minutes=1),
           "baseline_at": T0 + pd.Timedelta(minutes=10), "baseline_written_to": "other",
           "hubspot_read_at": T0 + pd.Timedelta(minutes=9), "other_read_at": T0 + pd.Timedelta(minutes=11)}
    out = merge_fields(pd.DataFrame([row])).iloc[0]
    assert (out["value"], out["write_other"], out["decided_by"]) == ("CTO", True, merge.ONE_SIDE)

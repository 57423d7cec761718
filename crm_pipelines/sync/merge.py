"""The three-way merge of a linked record's mapped fields (SPEC CONF-1..6, CON-1): HubSpot's value, the other
CRM's value and the baseline (the value last synced) decide what each side should hold after the sync.

One row per linked record and mapped field, vectorized: a merge over a million fields is a few array
operations, not a Python loop. Values arrive in one comparable text form (the caller maps and normalizes
them: picklists, countries, numbers), blank being a missing value or an empty string.

How a field is decided, in order:

- ``dont_sync`` (CONF-6): never written. ``set_on_create_only`` (CONF-6): written only when the target
  record is created (the plan's creates), never on a linked record.
- ``always_hubspot`` / ``always_other`` (CONF-6): one way, from that app: the other side takes its value.
- ``prefer_hubspot_unless_blank`` / ``prefer_other_unless_blank`` (CONF-6): that app's value whenever it
  has one, else the other app's (which is then written to it).
- ``two_way`` (CONF-1/2): a side *changed* when its value differs from the baseline (CONF-5: a value the
  sync itself wrote is the baseline, so it is never read back as a change), unless that side's copy was read
  before the sync's own write to it was confirmed: the copy then holds what the write replaced (the change
  sensor had not seen the write yet), not a user's change. Neither changed: nothing to do.
  One changed: its value moves. Both changed to different values: a *conflict* when the two changes are at
  most the window apart (CONF-1, 5 minutes by default), won by the default app (CONF-2); further apart, the
  later change wins (CONF-2). A field without a baseline (a link found for the first time) counts as
  changed on both sides, at each side's own change time.
- Never blank (CONF-3): when the winning value is blank the other side's value stays, and is the value
  both sides converge to.
- Direction (CON-1, CONF-4): a one-way connection never writes its source, whatever any rule says; its
  source is the default app (CONF-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction, FieldRule

HUBSPOT, OTHER = "hubspot", "other"
# what decided a field (the ``decided_by`` column): the SPEC rule and how it applied
UNCHANGED = "CONF-5 unchanged since the last sync"
ONE_SIDE = "CONF-2 changed on one side"
CONFLICT = "CONF-1/CONF-2 conflict within the window: default app wins"
LATEST = "CONF-2 both changed: the later change wins"
SAME = "changed to the same value on both sides"
NEVER_BLANK = "CONF-3 never blank a field"
DONT_SYNC = "CONF-6 don't sync"
CREATE_ONLY = "CONF-6 set on create only"
ALWAYS = "CONF-6 always"
PREFER = "CONF-6 prefer unless blank"

COLUMNS = ("hubspot_value", "other_value", "baseline_value", "hubspot_changed_at", "other_changed_at", "rule")


@dataclass(frozen=True)
class MergeSettings:
    """Per connection (the other CRM's): CON-1 direction, CONF-2 default app, CONF-1 window."""

    direction: Direction = Direction.TWO_WAY
    default_app: str = HUBSPOT  # HUBSPOT or OTHER
    window_minutes: float = 5.0


def _blank(values: pd.Series) -> np.ndarray:
    v = values.astype(object)
    return (v.isna() | (v == "")).to_numpy(dtype=bool)


def _differs(a: pd.Series, b: pd.Series, a_blank: np.ndarray, b_blank: np.ndarray) -> np.ndarray:
    """``a != b`` with every blank equal to every other blank."""
    both = ~a_blank & ~b_blank
    ne = np.zeros(len(a), dtype=bool)
    ne[both] = a.astype(object).to_numpy()[both] != b.astype(object).to_numpy()[both]
    return ne | (a_blank != b_blank)


def _read_before_written(fields: pd.DataFrame, side: str) -> np.ndarray:
    """Where ``side``'s copy was read before the sync's write to ``side`` that set the baseline: the copy holds
    the value that write replaced. Only the written side: the other side's copy, read earlier or not, holds a
    value the sync did not touch, and a change there is a change."""
    needed = (f"{side}_read_at", "baseline_at", "baseline_written_to")
    if not all(c in fields for c in needed):
        return np.zeros(len(fields), dtype=bool)
    read_at = pd.to_datetime(fields[f"{side}_read_at"], utc=True)
    base_at = pd.to_datetime(fields["baseline_at"], utc=True)
    return ((fields["baseline_written_to"] == side).to_numpy(dtype=bool)
            & (read_at < base_at).fillna(False).to_numpy(dtype=bool))


def merge_fields(fields: pd.DataFrame, settings: MergeSettings | None = None) -> pd.DataFrame:
    """``fields`` has ``COLUMNS`` (``baseline_value`` missing where there is no baseline: use a column
    ``has_baseline`` to say so; without it a missing baseline value means "never synced"), plus any key
    columns, which are kept; with ``hubspot_read_at``, ``other_read_at`` (when each side's copy was read),
    ``baseline_at`` and ``baseline_written_to`` (when the baseline was set, by a write to which side), a copy
    read before the write to its side is not a change. Returns those rows with ``value`` (what both sides should
    hold), ``write_hubspot`` and ``write_other`` (the side must be written with ``value``), ``conflict``,
    ``winner`` (``hubspot``, ``other`` or None) and ``decided_by``."""
    settings = settings or MergeSettings()
    n = len(fields)
    hs, ot, base = fields["hubspot_value"], fields["other_value"], fields["baseline_value"]
    hs_blank, ot_blank, base_blank = _blank(hs), _blank(ot), _blank(base)
    has_base = (fields["has_baseline"].to_numpy(dtype=bool) if "has_baseline" in fields
                else ~base.isna().to_numpy(dtype=bool))  # fmt: skip
    rule = fields["rule"].astype(str).to_numpy()
    hs_at = pd.to_datetime(fields["hubspot_changed_at"], utc=True)
    ot_at = pd.to_datetime(fields["other_changed_at"], utc=True)

    winner = np.full(n, None, dtype=object)
    decided = np.full(n, UNCHANGED, dtype=object)
    conflict = np.zeros(n, dtype=bool)

    # two-way: who changed since the baseline (CONF-5), then CONF-1/CONF-2
    two_way = rule == FieldRule.TWO_WAY.value
    hs_changed = ~has_base | (_differs(hs, base, hs_blank, base_blank) & ~_read_before_written(fields, HUBSPOT))
    ot_changed = ~has_base | (_differs(ot, base, ot_blank, base_blank) & ~_read_before_written(fields, OTHER))
    values_differ = _differs(hs, ot, hs_blank, ot_blank)
    only_hs = two_way & hs_changed & ~ot_changed & values_differ
    only_ot = two_way & ot_changed & ~hs_changed & values_differ
    both = two_way & hs_changed & ot_changed & values_differ
    gap = (hs_at - ot_at).abs().to_numpy()
    within = both & ~pd.isna(gap) & (gap <= np.timedelta64(int(settings.window_minutes * 60e6), "us"))
    default = _default_app(settings)
    later_hs = (hs_at > ot_at).fillna(False).to_numpy(dtype=bool) | (hs_at.notna() & ot_at.isna()).to_numpy()
    winner[only_hs] = HUBSPOT
    winner[only_ot] = OTHER
    winner[within] = default
    apart = both & ~within
    winner[apart] = np.where(later_hs[apart], HUBSPOT, OTHER)
    conflict[within] = True
    decided[only_hs | only_ot] = ONE_SIDE
    decided[within] = CONFLICT
    decided[apart] = LATEST
    decided[two_way & hs_changed & ot_changed & ~values_differ & has_base] = SAME

    # CONF-6 per-field rules: the app's value wins regardless of when it changed
    for rule_value, app, label in (
        (FieldRule.ALWAYS_HUBSPOT, HUBSPOT, ALWAYS), (FieldRule.ALWAYS_OTHER, OTHER, ALWAYS),
        (FieldRule.PREFER_HUBSPOT_UNLESS_BLANK, HUBSPOT, PREFER), (FieldRule.PREFER_OTHER_UNLESS_BLANK, OTHER, PREFER),
    ):  # fmt: skip
        at = (rule == rule_value.value) & values_differ
        winner[at] = app
        decided[at] = f"{label} {app}"
    decided[rule == FieldRule.DONT_SYNC.value] = DONT_SYNC
    decided[rule == FieldRule.SET_ON_CREATE_ONLY.value] = CREATE_ONLY

    # the winning value; CONF-3: a blank winner keeps the other side's value
    hs_obj, ot_obj = hs.astype(object).to_numpy(), ot.astype(object).to_numpy()
    value = np.where(winner == HUBSPOT, hs_obj, np.where(winner == OTHER, ot_obj, None))
    blank_win = ((winner == HUBSPOT) & hs_blank & ~ot_blank) | ((winner == OTHER) & ot_blank & ~hs_blank)
    value[blank_win & (winner == HUBSPOT)] = ot_obj[blank_win & (winner == HUBSPOT)]
    value[blank_win & (winner == OTHER)] = hs_obj[blank_win & (winner == OTHER)]
    decided[blank_win] = NEVER_BLANK
    for rule_value, app in ((FieldRule.PREFER_HUBSPOT_UNLESS_BLANK, HUBSPOT), (FieldRule.PREFER_OTHER_UNLESS_BLANK,
                                                                               OTHER)):
        decided[blank_win & (rule == rule_value.value)] = f"{PREFER} {app}: blank, so the other app's value"
    has_value = winner != None  # noqa: E711 - elementwise over an object array

    # which sides take the value: never the source of a one-way connection (CON-1, CONF-4), never the app an
    # ``always`` rule reads from, never a blank value (CONF-3)
    always_from_hs = rule == FieldRule.ALWAYS_HUBSPOT.value
    always_from_ot = rule == FieldRule.ALWAYS_OTHER.value
    value_s = pd.Series(value, dtype=object)
    value_blank = _blank(value_s)
    write_hs = has_value & ~value_blank & _differs(value_s, hs, value_blank, hs_blank) & ~always_from_hs
    write_ot = has_value & ~value_blank & _differs(value_s, ot, value_blank, ot_blank) & ~always_from_ot
    if settings.direction == Direction.HUBSPOT_TO_OTHER:
        write_hs[:] = False
    elif settings.direction == Direction.OTHER_TO_HUBSPOT:
        write_ot[:] = False
    out = fields.copy()
    out["value"] = value
    out["write_hubspot"] = write_hs
    out["write_other"] = write_ot
    out["conflict"] = conflict
    out["winner"] = winner
    out["decided_by"] = decided
    return out


def _default_app(settings: MergeSettings) -> str:
    """CONF-2: the connection's default app; with one-way sync, the source app."""
    if settings.direction == Direction.HUBSPOT_TO_OTHER:
        return HUBSPOT
    if settings.direction == Direction.OTHER_TO_HUBSPOT:
        return OTHER
    return settings.default_app

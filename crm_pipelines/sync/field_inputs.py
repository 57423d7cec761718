"""The merge's input for one target CRM and object: per linked record and mapped field, HubSpot's value, the
other CRM's value, when each record last changed, the baseline and the field's rule (CONF-6).

Values come from the ``unified`` field tables (mapped and normalized under the HubSpot property name, so the
two sides compare like for like) and are turned into one comparable text form here (numbers without
spurious decimals, timestamps in UTC ISO form, booleans as ``true``/``false``).

A change's time is the record's modification time unless the caller gives the field's own change time
(``*_field_times``: HubSpot's property history says when each property last changed). With the record's
time only, a record edited in one field counts as changed at that time for every field whose value differs
from its baseline: a first name changed 10 minutes before a Salesforce edit, on a contact whose phone was
edited since, looks later than the Salesforce edit. The plans pass HubSpot's property times where an
incremental extract read them; elsewhere a side's time is its record's (README, "When a change happened").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from crm_pipelines.settings.model import FieldRule

KEY = ("hubspot_id", "other_id", "field")


def comparable(values: pd.Series, kind: str = "text") -> pd.Series:
    """One text form per value (``kind``: the mapping's, ``transform.fields.Kind``), None for blank; equal
    values give equal text whatever type they were read back as. Vectorized per column."""
    v = values.astype(object)
    if kind == "number":
        f = pd.to_numeric(v, errors="coerce").astype("Float64")
        whole = (f.notna() & (f % 1 == 0)).fillna(False).to_numpy(dtype=bool)
        text = f.astype("string")
        text[whole] = f[whole].round().astype("Int64").astype("string")
    elif kind == "bool":
        lowered = v.astype("string").str.strip().str.lower()
        text = lowered.map({"true": "true", "1": "true", "false": "false", "0": "false"}).astype("string")
    elif kind in ("date", "datetime"):
        ts = pd.to_datetime(v, utc=True, errors="coerce", format="ISO8601")
        text = ts.dt.strftime("%Y-%m-%d" if kind == "date" else "%Y-%m-%dT%H:%M:%SZ").astype("string")
    else:
        text = v.astype("string").str.strip()
    text = text.where(text.notna() & (text != ""))
    return text.astype(object).where(text.notna(), None)


def merge_inputs(links: pd.DataFrame, hubspot: pd.DataFrame, other: pd.DataFrame, fields: Sequence[str],
                 baselines: pd.DataFrame, rules: Mapping[str, FieldRule] | None = None,
                 kinds: Mapping[str, str] | None = None, hubspot_field_times: pd.DataFrame | None = None,
                 other_field_times: pd.DataFrame | None = None) -> pd.DataFrame:
    """``links``: ``hubspot_id``, ``other_id`` (the linked records of one object pair); ``hubspot``/``other``:
    ``id``, ``modified_at`` and one column per HubSpot property; ``fields``: the properties both sides map;
    ``baselines``: ``hubspot_id``, ``field``, ``value`` (``state/baselines.py``); ``rules`` (CONF-6) and
    ``kinds`` per field (default two-way, text); ``hubspot_field_times`` / ``other_field_times``: ``id``,
    ``field``, ``changed_at``, when a field of a record last changed (a field-level history), which replaces
    the record's modification time for that field. Returns one row per linked record and field with the
    columns ``merge_fields`` takes, plus ``KEY``."""
    rules, kinds = rules or {}, kinds or {}
    fields = [f for f in dict.fromkeys(fields) if f in hubspot.columns and f in other.columns]
    pairs = links[["hubspot_id", "other_id"]].astype(object).drop_duplicates()

    def long(frame: pd.DataFrame, id_col: str, side: str) -> pd.DataFrame:
        wide = frame[["id", "modified_at", *fields]].rename(columns={"id": id_col, "modified_at": f"{side}_changed_at"})
        wide[id_col] = wide[id_col].astype(object)
        for f in fields:
            wide[f] = comparable(wide[f], kinds.get(f, "text"))
        out = wide.melt(id_vars=[id_col, f"{side}_changed_at"], value_vars=fields, var_name="field",
                        value_name=f"{side}_value")
        return out

    hs = long(hubspot[hubspot["id"].astype(object).isin(pairs["hubspot_id"])], "hubspot_id", "hubspot")
    ot = long(other[other["id"].astype(object).isin(pairs["other_id"])], "other_id", "other")
    out = pairs.merge(hs, on="hubspot_id").merge(ot, on=["other_id", "field"])
    base = baselines[["hubspot_id", "field", "value"]].rename(columns={"value": "baseline_value"})
    out = out.merge(base.assign(has_baseline=True), on=["hubspot_id", "field"], how="left")
    out["has_baseline"] = out["has_baseline"].fillna(False).astype(bool)
    out["baseline_value"] = out["baseline_value"].astype(object).where(out["has_baseline"], None)
    for col in ("hubspot_value", "other_value"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out = _field_times(_field_times(out, hubspot_field_times, "hubspot"), other_field_times, "other")
    out["rule"] = out["field"].map({f: FieldRule(rules.get(f, FieldRule.TWO_WAY)).value for f in fields})
    return out.reset_index(drop=True)


def _field_times(rows: pd.DataFrame, times: pd.DataFrame | None, side: str) -> pd.DataFrame:
    """``rows`` with ``<side>_changed_at`` taken from ``times`` (``id``, ``field``, ``changed_at``) where it
    has the record and field; the record's time elsewhere."""
    if times is None or times.empty:
        return rows
    id_col, at_col = f"{side}_id", f"{side}_changed_at"
    given = pd.DataFrame({id_col: times["id"].astype(str).to_numpy(), "field": times["field"].to_numpy(),
                          "_at": pd.to_datetime(times["changed_at"], utc=True).to_numpy()})  # fmt: skip
    # the latest entry per record and field: a history lists every change
    given = given.sort_values("_at", kind="stable").drop_duplicates([id_col, "field"], keep="last")
    at = rows[[id_col, "field"]].astype({id_col: str}).merge(given, on=[id_col, "field"], how="left")["_at"]
    out = rows.copy()
    record_at = pd.to_datetime(out[at_col], utc=True)
    out[at_col] = pd.to_datetime(at, utc=True).set_axis(out.index).fillna(record_at)
    return out

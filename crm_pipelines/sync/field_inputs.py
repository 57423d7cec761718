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

import numpy as np
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


def _same_as_read(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two aligned columns of values as read are equal (both blank, or equal values of one type), so
    that their comparable forms are equal too; False wherever that cannot be told without forming them
    (values of other types: ``1 == 1.0 == True`` in Python, not in text)."""
    kinds = {pd.api.types.infer_dtype(a, skipna=True), pd.api.types.infer_dtype(b, skipna=True)}
    if not kinds <= {"string", "floating", "empty"} or kinds == {"string", "floating"}:
        return np.zeros(len(a), dtype=bool)
    a_na, b_na = pd.isna(a), pd.isna(b)
    with np.errstate(invalid="ignore"):
        equal = np.asarray(a == b, dtype=bool)
    return (a_na & b_na) | (equal & ~a_na & ~b_na)


def merge_inputs(links: pd.DataFrame, hubspot: pd.DataFrame, other: pd.DataFrame, fields: Sequence[str],
                 baselines: pd.DataFrame, rules: Mapping[str, FieldRule] | None = None,
                 kinds: Mapping[str, str] | None = None, hubspot_field_times: pd.DataFrame | None = None,
                 other_field_times: pd.DataFrame | None = None, differing_only: bool = False) -> pd.DataFrame:
    """``links``: ``hubspot_id``, ``other_id`` (the linked records of one object pair); ``hubspot``/``other``:
    ``id``, ``modified_at`` and one column per HubSpot property; ``fields``: the properties both sides map;
    ``baselines``: ``hubspot_id``, ``field``, ``value`` (``state/baselines.py``); ``rules`` (CONF-6) and
    ``kinds`` per field (default two-way, text); ``hubspot_field_times`` / ``other_field_times``: ``id``,
    ``field``, ``changed_at``, when a field of a record last changed (a field-level history), which replaces
    the record's modification time for that field; ``differing_only``: no row where both sides hold the same
    value as read (the merge writes nothing there, whatever the baseline: a first sync's millions of equal
    fields). Returns one row per linked record and field with the columns ``merge_fields`` takes, plus
    ``KEY``, record-major."""
    rules, kinds = rules or {}, kinds or {}
    fields = [f for f in dict.fromkeys(fields) if f in hubspot.columns and f in other.columns]
    pairs = links[["hubspot_id", "other_id"]].astype(object).drop_duplicates()
    # each pair's row in either frame, then the fields taken column by column at those rows: no merge of a
    # row per record and field (millions on a first sync) on text keys
    hubspot = hubspot.drop_duplicates("id")
    other = other.drop_duplicates("id")
    h_at = pd.Index(hubspot["id"].astype(object)).get_indexer(pairs["hubspot_id"])
    o_at = pd.Index(other["id"].astype(object)).get_indexer(pairs["other_id"])
    found = (h_at >= 0) & (o_at >= 0)
    pairs, h_at, o_at = pairs[found].reset_index(drop=True), h_at[found], o_at[found]
    n, k = len(pairs), len(fields)
    raw = {side: [frame[f].to_numpy(dtype=object)[at] for f in fields]
           for side, frame, at in (("hubspot", hubspot, h_at), ("other", other, o_at))}  # fmt: skip
    # the rows kept, as (pair, field) cells in record-major order
    keep = np.ones((n, k), dtype=bool)
    if differing_only and k:
        keep = ~np.column_stack([_same_as_read(h, o) for h, o in zip(raw["hubspot"], raw["other"], strict=True)])
    cell_pair, cell_field = np.nonzero(keep)

    def values(side: str) -> pd.Series:
        """The fields' comparable values at the kept cells."""
        out = np.full(len(cell_pair), None, dtype=object)
        for i, f in enumerate(fields):
            mine = cell_field == i
            if mine.any():
                out[mine] = comparable(pd.Series(raw[side][i][cell_pair[mine]], dtype=object),
                                       kinds.get(f, "text")).to_numpy(dtype=object)
        out[pd.isna(out)] = None
        return pd.Series(out, dtype=object)  # as object: pandas would infer text with NaN for None

    def times(frame: pd.DataFrame, at: np.ndarray, column: str = "modified_at") -> pd.Series:
        return pd.Series(pd.to_datetime(frame[column], utc=True).array.take(at[cell_pair]))

    out = pd.DataFrame({
        "hubspot_id": pd.Series(pairs["hubspot_id"].to_numpy(dtype=object)[cell_pair], dtype=object),
        "other_id": pd.Series(pairs["other_id"].to_numpy(dtype=object)[cell_pair], dtype=object),
        "hubspot_changed_at": times(hubspot, h_at),
        "field": pd.Series(np.array(fields, dtype=object)[cell_field] if k else [], dtype=object),
        "hubspot_value": values("hubspot"), "other_changed_at": times(other, o_at),
        "other_value": values("other")})  # fmt: skip
    if "extracted_at" in hubspot and "extracted_at" in other:
        out["hubspot_read_at"] = times(hubspot, h_at, "extracted_at")
        out["other_read_at"] = times(other, o_at, "extracted_at")
    value, has, synced_at, written_to = _baselines(pairs["hubspot_id"], cell_pair, cell_field, fields, baselines)
    out["baseline_value"], out["has_baseline"] = pd.Series(value, dtype=object), has
    if synced_at is not None:
        out["baseline_at"] = synced_at
        out["baseline_written_to"] = pd.Series(written_to, dtype=object)
    out = _field_times(_field_times(out, hubspot_field_times, "hubspot"), other_field_times, "other")
    out["rule"] = out["field"].map({f: FieldRule(rules.get(f, FieldRule.TWO_WAY)).value for f in fields})
    return out.reset_index(drop=True)


def _baselines(record_ids: pd.Series, cell_record: np.ndarray, cell_field: np.ndarray, fields: list[str],
               baselines: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Series | None, np.ndarray | None]:
    """Each cell's (``record_ids[cell_record]``, ``fields[cell_field]``) baseline value, whether it has one, and
    where the baselines say so (``synced_at``, ``written_to``), when it was set and which side the write that
    set it went to (``hubspot`` or ``other``; None where unknown). Looked up by one integer per (record, field):
    a merge on the two text columns cost seconds per million."""
    n = len(cell_record)
    value, has = np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
    timed = "synced_at" in baselines and "written_to" in baselines
    synced = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    written_to = np.full(n, None, dtype=object) if timed else None

    def timed_out() -> pd.Series | None:
        return pd.Series(pd.to_datetime(synced).tz_localize("UTC")) if timed else None

    if baselines.empty or not n:
        return value, has, timed_out(), written_to
    records = pd.Index(record_ids.drop_duplicates())
    field_of = {f: i for i, f in enumerate(fields)}
    base = baselines[baselines["field"].isin(field_of)]
    rec = records.get_indexer(base["hubspot_id"].astype(object))
    base, rec = base[rec >= 0], rec[rec >= 0]
    key = rec.astype("int64") * len(fields) + base["field"].map(field_of).to_numpy(dtype="int64")
    last = ~pd.Series(key).duplicated(keep="last").to_numpy()
    key, stored = key[last], base["value"].astype(object).to_numpy()[last]
    wanted = (records.get_indexer(record_ids.to_numpy(dtype=object)[cell_record]).astype("int64") * len(fields)
              + cell_field.astype("int64"))
    at = pd.Index(key).get_indexer(wanted)
    has = at >= 0
    value[has] = stored[at[has]]
    if timed:
        when = pd.to_datetime(base["synced_at"], utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        synced[has] = when[last][at[has]]
        target = base["written_to"].to_numpy(dtype=object)[last]
        side = np.where(pd.isna(target), None, np.where(target == "hubspot", "hubspot", "other"))
        written_to[has] = side[at[has]]
    return value, has, timed_out(), written_to


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
    # only the rows of records with a history are looked up: few, where the rows are millions
    ids = rows[id_col].astype(str)
    listed = ids.isin(set(given[id_col])).to_numpy()
    out = rows.copy()
    record_at = pd.to_datetime(out[at_col], utc=True)
    at = pd.DataFrame({id_col: ids[listed].to_numpy(), "field": rows.loc[listed, "field"].to_numpy()}).merge(
        given, on=[id_col, "field"], how="left")["_at"]
    mine = record_at[listed]
    record_at[listed] = pd.to_datetime(at, utc=True).set_axis(mine.index).fillna(mine)
    out[at_col] = record_at
    return out

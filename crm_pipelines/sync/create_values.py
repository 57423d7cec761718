"""The field values a planned create carries: the source record's mapped fields, as the target will be
created with them (issue 12: a create states what it writes, not only that it writes).

Values come from the ``unified`` field tables (mapped and normalized under the HubSpot property name: the
form the field plan compares, ``field_inputs.comparable``), through the connection's field mappings:

- every mapped field of the pair (the defaults and the custom mappings of the other CRM's object) with a
  value in the source record; blanks are not written (CONF-3: a create never sets a blank);
- CONF-6 ``set_on_create_only`` fields are written here (and never by an update afterwards);
  ``dont_sync`` fields never;
- CON-1 per field: an ``always_hubspot`` field is never written to HubSpot, an ``always_other`` field never
  to the other CRM (the app an ``always`` rule reads from is never written, as in the merge).

Each value is named by its HubSpot property (``field``) and the target's API field (``target_field``);
``value_forms.py`` turns it into the form the target's API takes (OPS-9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from crm_pipelines.settings.model import FieldRule
from crm_pipelines.sync.field_inputs import comparable

CREATE_VALUE_COLUMNS = ("object", "source_crm", "source_id", "target_object", "field", "target_field", "kind",
                        "value", "rule")  # fmt: skip


@dataclass(frozen=True)
class MappedField:
    """One field of a HubSpot <-> other CRM object pair: HubSpot property, other CRM's field, kind, rule."""

    hubspot: str
    other: str
    kind: str = "text"
    rule: FieldRule = FieldRule.TWO_WAY


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CREATE_VALUE_COLUMNS})


def create_values(creates: pd.DataFrame, values: pd.DataFrame, fields: Sequence[MappedField], *, to_hubspot: bool,
                  target_object: str) -> pd.DataFrame:
    """``creates``: ``object``, ``source_crm``, ``source_id`` of one source object going to one target object;
    ``values``: ``id`` + one column per HubSpot property of the source records (the ``unified`` field table);
    ``fields``: the pair's mapped fields; ``to_hubspot``: the target is HubSpot (else the other CRM).
    Returns ``CREATE_VALUE_COLUMNS``, one row per create and field it is created with."""
    skip = FieldRule.ALWAYS_HUBSPOT if to_hubspot else FieldRule.ALWAYS_OTHER
    kept = [f for f in dict((f.hubspot, f) for f in fields).values()
            if f.rule not in (FieldRule.DONT_SYNC, skip) and f.hubspot in values.columns]  # fmt: skip
    if creates.empty or not kept:
        return empty()
    ids = creates["source_id"].astype(str)
    mine = values[values["id"].astype(str).isin(set(ids))]
    wide = pd.DataFrame({"source_id": mine["id"].astype(str).to_numpy()})
    for f in kept:
        wide[f.hubspot] = comparable(mine[f.hubspot].reset_index(drop=True), f.kind).to_numpy()
    long = wide.melt(id_vars="source_id", var_name="field", value_name="value").dropna(subset=["value"])
    meta = pd.DataFrame({"field": [f.hubspot for f in kept],
                         "target_field": [f.hubspot if to_hubspot else f.other for f in kept],
                         "kind": [f.kind for f in kept], "rule": [FieldRule(f.rule).value for f in kept]})  # fmt: skip
    rows = creates[["object", "source_crm"]].assign(source_id=ids.to_numpy()).drop_duplicates("source_id")
    out = rows.merge(long, on="source_id").merge(meta, on="field").assign(target_object=target_object)
    return out[list(CREATE_VALUE_COLUMNS)].reset_index(drop=True)


def pair_fields(defaults: Sequence, customs: Sequence, rules: Mapping[str, FieldRule]) -> list[MappedField]:
    """The mapped fields of one pair: the default ``FieldMap``s and the custom ``FieldMapping``s of the other
    CRM's object, each with its CONF-6 rule (by HubSpot property, as the merge reads them)."""
    out = [MappedField(m.hubspot, m.other, m.kind, rules.get(m.hubspot, FieldRule.TWO_WAY)) for m in defaults]
    out += [MappedField(m.hubspot, m.other, m.type, rules.get(m.hubspot, m.rule)) for m in customs]
    return out

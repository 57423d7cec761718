"""OPS-9: each planned value in the form the target's API takes, and text too long for the target's field
reported, never cut.

The plan compares values in one normalized text form (``field_inputs.comparable``: dates ``YYYY-MM-DD``,
datetimes UTC ``YYYY-MM-DDTHH:MM:SSZ``); the API form per target:

- HubSpot: a date-only property as midnight UTC in epoch milliseconds; a datetime as epoch milliseconds.
- Salesforce: a date as ``YYYY-MM-DD``; a datetime in UTC, ``YYYY-MM-DDTHH:MM:SS.000Z``.
- Dataverse: a datetime as ``Edm.DateTimeOffset`` (``YYYY-MM-DDTHH:MM:SSZ``); a date-only column
  (``estimatedclosedate``) as ``Edm.Date`` (``YYYY-MM-DD``).
- Salesforce and Dataverse: a number as a JSON number, a yes/no as a JSON boolean (Dataverse refuses
  ``"1200"`` for an ``Edm.Decimal``); HubSpot takes every value as text.

Text longer than the target field's length (``LENGTHS``: the fields the default mappings write, as the
Salesforce describe and the Dataverse metadata state them; the sandboxes serve the same, a test keeps them
equal) gets no API value and a finding naming the record, the field, the length and the limit. A field
whose length is not listed (HubSpot properties, custom mappings) is not checked here; the writes report
what an API cut (``crm/outcomes.py``: ``truncated``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipelines.sync.plan import FINDING_COLUMNS, frame

# (crm, object, field) -> the most characters the field takes
LENGTHS: dict[tuple[str, str, str], int] = {
    **{("salesforce", obj, f): n for obj in ("Lead", "Contact")
       for f, n in (("Email", 80), ("FirstName", 40), ("LastName", 80), ("Phone", 40))},
    ("salesforce", "Lead", "Country"): 80, ("salesforce", "Lead", "State"): 80,
    ("salesforce", "Lead", "Company"): 255,
    ("salesforce", "Contact", "MailingCountry"): 80, ("salesforce", "Contact", "MailingState"): 80,
    ("salesforce", "Account", "Name"): 255, ("salesforce", "Account", "Website"): 255,
    ("salesforce", "Opportunity", "Name"): 120, ("salesforce", "Opportunity", "Type"): 255,
    ("salesforce", "Opportunity", "Description"): 32_000,
    ("salesforce", "Task", "Subject"): 255, ("salesforce", "Task", "Description"): 32_000,  # OPS-4
    **{("dynamics", obj, f): n for obj in ("contacts", "leads")
       for f, n in (("emailaddress1", 100), ("firstname", 50), ("lastname", 50), ("telephone1", 50),
                    ("address1_country", 80), ("address1_stateorprovince", 50))},
    ("dynamics", "leads", "companyname"): 100,
    ("dynamics", "accounts", "name"): 160, ("dynamics", "accounts", "websiteurl"): 200,
    ("dynamics", "opportunities", "name"): 300, ("dynamics", "opportunities", "description"): 2_000,
}  # fmt: skip
# Dataverse date-only columns (DateOnly behaviour: Edm.Date)
DATE_ONLY = {("dynamics", "opportunities", "estimatedclosedate")}
# the columns a frame of planned values has (``create_values.CREATE_VALUE_COLUMNS`` has them all)
VALUE_COLUMNS = ("object", "source_id", "target_object", "target_field", "kind", "value")


def api_form(values: pd.Series, kind: str, crm: str, date_only: bool = False) -> pd.Series:
    """``values`` (normalized text) in the form ``crm``'s API takes for a field of ``kind``; vectorised."""
    v = values.astype(object)
    if kind in ("number", "bool") and crm != "hubspot":  # typed JSON (HubSpot takes every value as a string)
        if kind == "number":
            typed = pd.to_numeric(v, errors="coerce").astype(object)
        else:
            typed = v.astype("string").str.lower().map({"true": True, "false": False}).astype(object)
        return typed.where(pd.notna(typed), None)
    if kind not in ("date", "datetime"):
        return v
    ts = pd.to_datetime(v, utc=True, errors="coerce", format="ISO8601")
    if kind == "date":
        ts = ts.dt.normalize()  # a date is that day's midnight UTC
    if crm == "hubspot":
        ms = (ts - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(milliseconds=1)
        out = ms.astype("Int64").astype("string")
    elif kind == "date" or date_only:
        out = ts.dt.strftime("%Y-%m-%d")
    elif crm == "salesforce":
        out = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    else:  # Dataverse Edm.DateTimeOffset
        out = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.astype(object).where(ts.notna().to_numpy(), None)


# kinds whose comparable form (``field_inputs.comparable``) is formatted, not the text as read, stripped
FORMATTED = frozenset({"number", "bool", "date", "datetime"})


def may_be_too_long(values: pd.DataFrame, limits: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """The rows of ``values`` (a field table: one column per HubSpot property) any of whose ``limits``' fields
    (property -> its kind and the most characters the target takes) is longer as read than its limit: the only
    ones whose text can be too long, since a text's comparable form is the text stripped (all rows when a
    field's kind is ``FORMATTED``). What a plan that keeps only the findings of too-long text reads instead of
    forming every value."""
    if any(kind in FORMATTED for kind, _ in limits.values()):
        return values
    over = np.zeros(len(values), dtype=bool)
    for name, (_, limit) in limits.items():
        if name in values.columns:
            size = values[name].astype("string").str.len().to_numpy(dtype="float64", na_value=0.0)
            over |= size > limit
    return values[over]


def value_forms(values: pd.DataFrame, crm: str, record_column: str = "source_id",
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``values`` (``VALUE_COLUMNS``) written to ``crm``: the same rows with ``api_value`` (None for text too long
    for its field) and the findings for those (``FINDING_COLUMNS``; ``id``: the record, by ``record_column``; a
    create's record is its source, ``source_crm``'s)."""
    out = values.copy()
    out["api_value"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    for (kind, obj, fld), part in out.groupby(["kind", "target_object", "target_field"], sort=False):
        out.loc[part.index, "api_value"] = api_form(part["value"], str(kind), crm,
                                                    (crm, str(obj), str(fld)) in DATE_ONLY).to_numpy()
    known = pd.DataFrame([(o, f, n) for (c, o, f), n in LENGTHS.items() if c == crm],
                         columns=["target_object", "target_field", "limit"])
    keys = out[["target_object", "target_field"]].astype(str).reset_index(drop=True)
    limit = pd.Series(keys.merge(known, how="left")["limit"].to_numpy(), index=out.index).astype("Float64")
    size = out["value"].astype("string").str.len().astype("Float64")
    long = (limit.notna() & (size > limit)).fillna(False).to_numpy(dtype=bool)
    api = out["api_value"].astype(object)
    # object, not pandas' inferred text dtype: a value not written stays None
    out["api_value"] = pd.Series(np.where(~long & api.notna().to_numpy(), api.to_numpy(), None), index=out.index,
                                 dtype=object)
    bad = out[long]
    reason = ("OPS-9 " + bad["target_object"].astype(str) + "." + bad["target_field"].astype(str) + " is "
              + size[long].astype("Int64").astype(str) + " characters, longer than its "
              + limit[long].astype("Int64").astype(str) + ": not cut, not written")
    # the record is a create's source record (in its own CRM, where the plan finds its identity), else ``crm``'s
    record_crm = bad["source_crm"] if record_column == "source_id" and "source_crm" in bad.columns else crm
    found = frame(FINDING_COLUMNS, pd.DataFrame({"object": bad["object"], "crm": record_crm, "id": bad[record_column],
                                                 "target_crm": crm, "reason": reason}))  # fmt: skip
    return out, found



def update_forms(updates: pd.DataFrame, crm: str, target_object: pd.Series, fields: pd.DataFrame,
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``updates`` (``field_plan.UPDATE_COLUMNS``) written to ``crm``, each to a record of ``target_object``
    (aligned with ``updates``): with ``target_field`` (the API's name of the HubSpot property ``field``) and
    ``api_value`` (the new value in the API's form; None when too long), and the findings of text too long.
    ``fields``: ``target_object``, ``field``, ``target_field``, ``kind`` of the mapped fields; a field not
    among them is named as in HubSpot and taken as text."""
    keys = pd.DataFrame({"target_object": target_object.astype(str).to_numpy(),
                         "field": updates["field"].astype(str).to_numpy()})  # fmt: skip
    named = keys.merge(fields.drop_duplicates(["target_object", "field"]), how="left")
    values = pd.DataFrame({
        "object": updates["kind"].to_numpy(), "record_id": updates["record_id"].to_numpy(),
        "target_object": keys["target_object"].to_numpy(),
        "target_field": named["target_field"].fillna(named["field"]).to_numpy(),
        "kind": named["kind"].fillna("text").to_numpy(), "value": updates["new"].to_numpy()})  # fmt: skip
    out, found = value_forms(values, crm, "record_id")
    return updates.assign(target_field=out["target_field"].to_numpy(),
                          api_value=pd.Series(out["api_value"].to_numpy(), index=updates.index, dtype=object)), found

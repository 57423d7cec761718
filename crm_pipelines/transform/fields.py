"""Field mapping and value normalization (DEAL-1 default fields, custom mappings, CON-10 codes, owners).

Each mapping reads one column of a mirror frame and yields a typed value under the HubSpot property
name. Values that cannot be converted become findings (crm, object, id, field, value, error) and NA in
the output - never an exception, never a silently dropped value (OPS-6, CON-10).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from crm_pipelines.transform.countries import normalize_countries, normalize_states
from crm_pipelines.transform.frames import Mirrors, text

Kind = Literal["text", "number", "date", "datetime", "bool", "picklist", "country", "state", "owner", "email", "domain"]
FINDING_COLUMNS = ("crm", "object", "id", "field", "value", "error")


@dataclass(frozen=True)
class FieldMap:
    """``other`` column -> ``hubspot`` property; ``value_map`` (other value -> HubSpot value) for picklists.

    ``country_field``: for ``kind="state"``, the HubSpot property holding the record's country.
    """

    hubspot: str
    other: str
    kind: Kind = "text"
    value_map: Mapping[str, str] = field(default_factory=dict)
    country_field: str | None = None


_CONTACT = (FieldMap("email", "", "email"), FieldMap("firstname", ""), FieldMap("lastname", ""),
            FieldMap("phone", ""), FieldMap("hubspot_owner_id", "", "owner"), FieldMap("country", "", "country"),
            FieldMap("state", "", "state", country_field="country"))


def _contact(email: str, first: str, last: str, phone: str, owner: str, country: str, state: str,
             extra: tuple[FieldMap, ...] = ()) -> tuple[FieldMap, ...]:
    cols = (email, first, last, phone, owner, country, state)
    return tuple(FieldMap(f.hubspot, c, f.kind, f.value_map, f.country_field) for f, c in zip(_CONTACT, cols,
                                                                                           strict=True)) + extra


# the default field sets: contacts (email, names, phone, company, owner, address), companies (name, domain,
# owner), deals (DEAL-1: owner, close date, name, type, description, amount; the stage is stages.py's)
DEFAULT_FIELDS: dict[tuple[str, str], tuple[FieldMap, ...]] = {
    ("salesforce", "Contact"): _contact("Email", "FirstName", "LastName", "Phone", "OwnerId", "MailingCountry",
                                        "MailingState"),
    ("salesforce", "Lead"): _contact("Email", "FirstName", "LastName", "Phone", "OwnerId", "Country", "State",
                                     (FieldMap("company", "Company"),)),
    ("salesforce", "Account"): (FieldMap("name", "Name"), FieldMap("domain", "Website", "domain"),
                                FieldMap("hubspot_owner_id", "OwnerId", "owner")),
    ("salesforce", "Opportunity"): (
        FieldMap("dealname", "Name"), FieldMap("amount", "Amount", "number"),
        FieldMap("closedate", "CloseDate", "date"),
        FieldMap("dealtype", "Type", "picklist", {"New Customer": "newbusiness",
                                                  "Existing Customer - Upgrade": "existingbusiness",
                                                  "Existing Customer - Replacement": "existingbusiness",
                                                  "Existing Customer - Downgrade": "existingbusiness"}),
        FieldMap("description", "Description"), FieldMap("hubspot_owner_id", "OwnerId", "owner")),
    ("dynamics", "contacts"): _contact("emailaddress1", "firstname", "lastname", "telephone1", "_ownerid_value",
                                       "address1_country", "address1_stateorprovince"),
    ("dynamics", "leads"): _contact("emailaddress1", "firstname", "lastname", "telephone1", "_ownerid_value",
                                    "address1_country", "address1_stateorprovince",
                                    (FieldMap("company", "companyname"),)),
    ("dynamics", "accounts"): (FieldMap("name", "name"), FieldMap("domain", "websiteurl", "domain"),
                               FieldMap("hubspot_owner_id", "_ownerid_value", "owner")),
    ("dynamics", "opportunities"): (
        FieldMap("dealname", "name"), FieldMap("amount", "estimatedvalue", "number"),
        FieldMap("closedate", "estimatedclosedate", "date"), FieldMap("description", "description"),
        FieldMap("hubspot_owner_id", "_ownerid_value", "owner")),
    ("hubspot", "contacts"): (
        FieldMap("email", "email", "email"), FieldMap("firstname", "firstname"), FieldMap("lastname", "lastname"),
        FieldMap("phone", "phone"), FieldMap("company", "company"), FieldMap("lifecyclestage", "lifecyclestage"),
        FieldMap("hubspot_owner_id", "hubspot_owner_id"), FieldMap("country", "country", "country"),
        FieldMap("state", "state", "state", country_field="country"), FieldMap("createdate", "createdate", "datetime")),
    ("hubspot", "companies"): (FieldMap("name", "name"), FieldMap("domain", "domain", "domain"),
                               FieldMap("hubspot_owner_id", "hubspot_owner_id")),
    ("hubspot", "deals"): (
        FieldMap("dealname", "dealname"), FieldMap("amount", "amount", "number"),
        FieldMap("closedate", "closedate", "date"), FieldMap("dealtype", "dealtype"),
        FieldMap("description", "description"), FieldMap("hubspot_owner_id", "hubspot_owner_id"),
        FieldMap("createdate", "createdate", "datetime")),
}

_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


def owner_map(mirrors: Mirrors) -> pd.DataFrame:
    """Owners matched across CRMs by case-folded email: email, hubspot_owner_id, salesforce_id, dynamics_id."""
    parts = {
        "hubspot_owner_id": mirrors.live("hubspot", "owners", ["email"]).rename(columns={"email": "_e"}),
        "salesforce_id": mirrors.live("salesforce", "User", ["Email"]).rename(columns={"Email": "_e"}),
        "dynamics_id": mirrors.live("dynamics", "systemusers", ["internalemailaddress"]).rename(
            columns={"internalemailaddress": "_e"}),
    }
    out = None
    for name, frame in parts.items():
        f = pd.DataFrame({"email": text(frame["_e"]).str.strip().str.lower().to_numpy(),
                          name: text(frame["id"]).to_numpy()}).dropna().drop_duplicates("email")
        out = f if out is None else out.merge(f, on="email", how="outer")
    assert out is not None
    return out.astype("string").reset_index(drop=True)


def convert(values: pd.Series, kind: Kind, value_map: Mapping[str, str] | None = None,
            owners: pd.Series | None = None, country: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
    """(converted values, failed mask). ``owners``: other owner id -> HubSpot owner id (``kind="owner"``)."""
    # plain objects: cheap missing-value checks whatever dtype the frame was built with
    raw = pd.Series(values.to_numpy(dtype=object, na_value=None), index=values.index, dtype=object)
    if kind == "text":  # text as the API sent it: nothing to convert, nothing can fail
        return raw, pd.Series(np.zeros(len(raw), dtype=bool), index=raw.index)
    present = raw.notna().to_numpy(dtype=bool)
    if kind == "number":
        out = pd.to_numeric(raw, errors="coerce").astype("Float64")
    elif kind == "datetime":
        from crm_pipelines.transform.frames import utc

        out = utc(raw)
    elif kind == "date":
        from crm_pipelines.transform.frames import utc

        # a date is a calendar day: the instant's UTC day (HubSpot sends midnight UTC, Salesforce YYYY-MM-DD)
        out = utc(raw).dt.floor("D")
    elif kind == "bool":
        s = text(raw).str.strip().str.lower()
        out = pd.Series(pd.array(np.where(s.isin(_TRUE), True, np.where(s.isin(_FALSE), False, None)),
                                 dtype="boolean"), index=raw.index)
    elif kind == "picklist":
        s = raw.str.strip()
        out = s.map(dict(value_map or {})) if value_map else s
    elif kind == "country":
        out = normalize_countries(raw)["code"]
    elif kind == "state":
        out = normalize_states(country if country is not None else pd.Series(pd.NA, index=raw.index), raw)["code"]
    elif kind == "owner":
        out = raw.map(owners) if owners is not None else raw
    elif kind == "email":
        out = raw.str.strip().str.lower()
    elif kind == "domain":
        from crm_pipelines.transform.companies import normalize_domains

        out = normalize_domains(raw)
    else:
        raise ValueError(f"unknown field kind {kind!r}")
    out = pd.Series(out.array, index=raw.index)
    failed = present & out.isna().to_numpy(dtype=bool)
    if failed.any():  # blank values ("" or whitespace only) are absent, not failures
        failed[failed] = (text(raw[failed]).str.strip() != "").fillna(False).to_numpy(dtype=bool)
    return out, pd.Series(failed, index=raw.index)


def map_fields(frame: pd.DataFrame, crm: str, obj: str, mappings: Iterable[FieldMap] | None = None,
               owners: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mapped, typed values of one mirror frame (``id`` + one column per HubSpot property) and findings.

    ``mappings`` default to ``DEFAULT_FIELDS[(crm, obj)]``; pass defaults + custom mappings to extend.
    ``owners`` is ``owner_map``'s frame (owner ids are translated to HubSpot owner ids).
    """
    maps = tuple(DEFAULT_FIELDS.get((crm, obj), ()) if mappings is None else mappings)
    out = pd.DataFrame({"id": text(frame["id"]).to_numpy()}, index=frame.index)
    owner_lookup = None
    if owners is not None and crm != "hubspot":
        col = "salesforce_id" if crm == "salesforce" else "dynamics_id"
        o = owners.dropna(subset=[col])
        owner_lookup = pd.Series(o["hubspot_owner_id"].to_numpy(), index=o[col].to_numpy())
    findings = []
    for m in sorted(maps, key=lambda m: m.kind == "state"):  # states need the country converted first
        src = frame[m.other] if m.other in frame else pd.Series(None, index=frame.index, dtype=object)
        country = out[m.country_field] if m.country_field and m.country_field in out else None
        values, failed = convert(src, m.kind, m.value_map, owner_lookup, country)
        out[m.hubspot] = values
        if failed.any():
            findings.append(pd.DataFrame({"crm": crm, "object": obj, "id": out.loc[failed, "id"],
                                          "field": m.hubspot, "value": text(src[failed]),
                                          "error": f"cannot convert to {m.kind}"}))
    f = pd.concat(findings, ignore_index=True) if findings else pd.DataFrame(columns=list(FINDING_COLUMNS))
    return out.reset_index(drop=True), f.astype("string")

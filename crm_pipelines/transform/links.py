"""The link table's rows as the identities say they are, and why a row changed (CON-2, CON-4, COM-1/3).

A link is one contact, company or deal identity that has a HubSpot record and a record in Salesforce or
Dynamics (HubSpot is the hub: the other CRMs meet only through it, TOP-1), keyed by the HubSpot id.

Links the identities make by matching (``origin = "match"``: email, contacts, domain) are observations:
each run derives them again, so a new email match, a conversion or a deletion shows as a change with its
reason. Links the sync has written through (``origin = "sync"``, set by the writes) are binding: the
transform keeps their records together whatever their emails say, until a record is deleted or merged, or
a Lead is converted (the link follows ``ConvertedContactId``, CON-4).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

ID_COLUMNS = ("hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type")
COLUMNS = ("kind", "hubspot_id", "identity_id", "salesforce_id", "salesforce_type", "dynamics_id",
           "dynamics_type", "origin")
CHANGE_COLUMNS = ("kind", "hubspot_id", "change", "before", "after", "reason")


def _rows(kind: str, frame: pd.DataFrame, sf_type: pd.Series | str | None, dyn_type: pd.Series | str | None,
          ) -> pd.DataFrame:
    has = frame["hubspot_id"].notna() & (frame["salesforce_id"].notna() | frame["dynamics_id"].notna())
    f = frame[has.to_numpy(dtype=bool)]
    out = pd.DataFrame({"kind": kind, "hubspot_id": f["hubspot_id"].astype(object).to_numpy(),
                        "identity_id": f["identity_id"].astype(object).to_numpy()})
    for crm, types in (("salesforce", sf_type), ("dynamics", dyn_type)):
        ids = f[f"{crm}_id"].astype(object)
        out[f"{crm}_id"] = ids.where(ids.notna(), None).to_numpy()
        t = f[types].astype(object) if isinstance(types, str) and types in f else pd.Series(types, index=f.index)
        out[f"{crm}_type"] = np.where(ids.notna().to_numpy(), t.to_numpy(dtype=object), None)
    out["origin"] = "match"
    return out[list(COLUMNS)]


def derive(contacts: pd.DataFrame, companies: pd.DataFrame) -> pd.DataFrame:
    """Link rows of the contact identities (types Lead/Contact, contact/lead) and company identities
    (Account, account) that have a HubSpot record and at least one other."""
    parts = []
    if len(contacts):
        parts.append(_rows("contact", contacts, "salesforce_type", "dynamics_type"))
    if len(companies):
        parts.append(_rows("company", companies, "Account", "account"))
    if not parts:
        return empty()
    return pd.concat(parts, ignore_index=True)


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def side(row: Mapping | None) -> dict | None:
    """A link row as its history names it: the ids it pairs, and the identity."""
    if row is None:
        return None
    return {c: row[c] for c in ID_COLUMNS if row.get(c) is not None} | {"identity_id": row.get("identity_id")}


def changes(old: pd.DataFrame, new: pd.DataFrame, *, deleted: set[tuple[str, str]],
            converted: Mapping[str, str], emails: Mapping[str, str], methods: Mapping[str, str]) -> pd.DataFrame:
    """What changed from ``old`` to ``new`` (both for the same HubSpot ids), one row per link created,
    changed or removed, with the reason a user reads in the link history.

    ``deleted``: (crm, id) of records deleted in their CRM; ``converted``: Lead id -> the Contact it became;
    ``emails``: contact identity -> its email; ``methods``: company identity -> how it matched."""
    key = ["kind", "hubspot_id"]
    cols = ["identity_id", *ID_COLUMNS[1:]]
    both = old[key + cols].merge(new[key + cols], on=key, how="outer", suffixes=("_old", "_new"), indicator=True)
    same = both["_merge"] == "both"
    for c in ID_COLUMNS[1:]:
        a, b = both[f"{c}_old"].astype(object), both[f"{c}_new"].astype(object)
        same &= (a == b) | (a.isna() & b.isna())
    both = both[~same.to_numpy(dtype=bool)]
    if both.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CHANGE_COLUMNS})
    parts = []
    created = both[both["_merge"] == "right_only"]
    if len(created):  # the bulk of a first run: reasons built column-wise
        ident = created["identity_id_new"].astype(object)
        how = np.where(created["kind"] == "contact", ident.map(emails).radd("email ").to_numpy(dtype=object),
                       ident.map(methods).to_numpy(dtype=object))
        reason = pd.Series(how, index=created.index, dtype=object)
        reason = ("new match by " + reason).where(reason.notna(), "new match")
        after = created[[f"{c}_new" for c in cols]].rename(columns=lambda c: c.removesuffix("_new"))
        after = after.assign(hubspot_id=created["hubspot_id"]).astype(object)
        after = after.where(after.notna(), None).to_dict("records")
        parts.append(pd.DataFrame({"kind": created["kind"].to_numpy(dtype=object),
                                   "hubspot_id": created["hubspot_id"].to_numpy(dtype=object), "change": "created",
                                   "before": None, "after": [side(a) for a in after],
                                   "reason": reason.to_numpy(dtype=object)}))  # fmt: skip
    out = []
    for r in both[both["_merge"] != "right_only"].to_dict("records"):
        before = {c: r[f"{c}_old"] for c in cols} | {"hubspot_id": r["hubspot_id"]}
        after = {c: r[f"{c}_new"] for c in cols} | {"hubspot_id": r["hubspot_id"]}
        before = {k: (None if pd.isna(v) else v) for k, v in before.items()}
        after = {k: (None if pd.isna(v) else v) for k, v in after.items()}
        if r["_merge"] == "left_only":
            change, after = "removed", None
            reason = ("deleted in hubspot" if ("hubspot", r["hubspot_id"]) in deleted
                      else "; ".join(_why_side(crm, before, {}, deleted, converted, emails, methods, r["kind"])
                                     for crm in ("salesforce", "dynamics") if before.get(f"{crm}_id")))
        else:
            change = "changed"
            reason = "; ".join(_why_side(crm, before, after, deleted, converted, emails, methods, r["kind"])
                               for crm in ("salesforce", "dynamics")
                               if before.get(f"{crm}_id") != after.get(f"{crm}_id"))
        out.append({"kind": r["kind"], "hubspot_id": r["hubspot_id"], "change": change,
                    "before": side(before), "after": side(after), "reason": reason or "rematched"})
    if out:
        parts.append(pd.DataFrame(out, columns=list(CHANGE_COLUMNS)))
    return pd.concat(parts, ignore_index=True)[list(CHANGE_COLUMNS)]


def _matched(kind: str, row: Mapping, emails: Mapping[str, str], methods: Mapping[str, str]) -> str:
    if kind == "contact":
        email = emails.get(row.get("identity_id") or "")
        return f"new match by email {email}" if email else "new match"
    method = methods.get(row.get("identity_id") or "")
    return f"new match by {method}" if method else "new match"


def _why_side(crm: str, before: Mapping, after: Mapping, deleted: set[tuple[str, str]],
              converted: Mapping[str, str], emails: Mapping[str, str], methods: Mapping[str, str], kind: str) -> str:
    was, now = before.get(f"{crm}_id"), after.get(f"{crm}_id")
    was_type, now_type = before.get(f"{crm}_type"), after.get(f"{crm}_type")
    if was and now and converted.get(was) == now:
        return f"converted lead: {crm} {was_type} {was} became {now_type} {now} (CON-4)"
    if was and (crm, was) in deleted:
        gone = f"{crm} {was_type} {was} deleted or merged"
        return f"{gone}; {_matched(kind, after, emails, methods)} with {now}" if now else gone
    if not was:
        return f"{_matched(kind, after, emails, methods)}: {crm} {now_type} {now}"
    if not now:
        return f"{crm} {was_type} {was} no longer matches"
    return f"{crm} {was_type} {was} replaced by {now_type} {now} ({_matched(kind, after, emails, methods)})"

"""Incremental transform: given the previous result and only the records changed since, recompute what they
touch (Invariant 6: work proportional to the change, not to the CRM).

What is recomputed and how it stays equal to a full recompute:

- contact identities: the changed records' *component* - every identity and email reachable from them
  through shared emails, links and Lead conversions (closed iteratively) - is rebuilt with the same
  function as the full run and spliced in; identities outside it cannot be affected by the change;
- field values and their findings, deal stage mapping and deal identities: per record, by id;
- contact rollups: the contacts associated (before or after) with a changed deal or association.

Company identities, Account-creation candidates, identity associations and lifecycle proposals are
carried over from the previous result; changes to companies/accounts need a full run (see the report).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from crm_pipelines.transform.deals import DEAL_OBJECTS
from crm_pipelines.transform.fields import DEFAULT_FIELDS, map_fields
from crm_pipelines.transform.frames import Mirrors, links_of, text
from crm_pipelines.transform.identities import (
    RECORD_COLUMNS,
    ContactIdentities,
    contact_identities,
    contact_records,
)
from crm_pipelines.transform.pipeline import TransformResult, TransformSettings
from crm_pipelines.transform.rollups import contact_rollups, hubspot_deal_contacts, hubspot_deal_facts
from crm_pipelines.transform.stages import deal_stage_keys, hubspot_stages, map_deal_stages

CONTACT_OBJECTS = {("hubspot", "contacts"), ("salesforce", "Contact"), ("salesforce", "Lead"),
                   ("dynamics", "contacts"), ("dynamics", "leads")}
_MAX_CLOSURE = 20


def _touched(delta: Mirrors, keys) -> pd.DataFrame:
    parts = [pd.DataFrame({"crm": crm, "id": text(f["id"]).to_numpy()}) for (crm, obj), f in delta.frames.items()
             if (crm, obj) in keys]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"crm": [], "id": []})
    return out.astype("string").drop_duplicates()


def update_contacts(prev: ContactIdentities, delta: Mirrors, links: pd.DataFrame | None,
                    settings: TransformSettings) -> ContactIdentities:
    """Rebuild the changed records' component. Members carry the records' own columns, so the component's
    records are taken from them by position; no second copy of all records is kept."""
    touched = _touched(delta, CONTACT_OBJECTS)
    if touched.empty:
        return prev
    new_recs = contact_records(delta, settings.dynamics_entities)
    members = prev.members
    m_id = members["id"]
    hit = m_id.isin(touched["id"]).to_numpy().copy()
    if hit.any():  # ids are unique per CRM; confirm the CRM on the few hits
        pos = np.flatnonzero(hit)
        pair = members["crm"].to_numpy(dtype=object)[pos] + "\x1f" + m_id.to_numpy(dtype=object)[pos]
        hit[pos] = pd.Series(pair).isin(touched["crm"] + "\x1f" + touched["id"]).to_numpy()
    usable = members["email_valid"] if settings.valid_email_only else members["email"].notna()
    key = members["email"].where(usable)
    ident = members["identity_id"]
    new_keys = set(new_recs["email_raw"].astype("string").str.strip().str.lower().dropna())
    keys = set(key[hit].dropna()) | new_keys
    idents = set(ident[hit].dropna()) | {"email:" + k for k in keys}
    link = links_of(links, "contact")
    link_ident = "link:" + link["hubspot_id"]
    # Lead conversions tie a Lead to its Contact: a small side table, scanned instead of all records
    conv = members.loc[members["converted_contact_id"].notna(), ["id", "converted_contact_id"]]
    ids = set(touched["id"]) | set(new_recs["converted_contact_id"].dropna())
    sel = np.zeros(len(members), dtype=bool)
    new_i, new_k, new_ids = idents, keys, ids
    first = hit | m_id.isin(ids).to_numpy()
    for _ in range(_MAX_CLOSURE):
        grow = ident.isin(new_i).to_numpy() | key.isin(new_k).to_numpy() | first
        first = False
        if new_ids:
            extra = set(conv.loc[conv["id"].isin(new_ids), "converted_contact_id"]) | set(
                conv.loc[conv["converted_contact_id"].isin(new_ids), "id"])
            if len(link):
                lk = link_ident.isin(new_i) | link["salesforce_id"].isin(new_ids) | link["hubspot_id"].isin(
                    new_ids) | link["dynamics_id"].isin(new_ids)
                extra |= set(link.loc[lk, ["hubspot_id", "salesforce_id", "dynamics_id"]].stack().dropna())
                idents = idents | set(link_ident[lk])
            extra -= ids
            if extra:
                grow |= m_id.isin(extra).to_numpy()
                ids = ids | extra
        added = grow & ~sel
        sel |= grow
        new_i = set(ident[added].dropna()) - idents
        new_k = set(key[added].dropna()) - keys
        new_ids = set(m_id[added]) - ids
        idents, keys, ids = idents | new_i, keys | new_k, ids | new_ids
        if not (new_i or new_k or new_ids):
            break
    keep_old = sel & ~hit
    sub = pd.concat([members.loc[keep_old, list(RECORD_COLUMNS)], new_recs], ignore_index=True)
    sub_links = link[link_ident.isin(idents)]
    valid = members.loc[sel, ["email", "email_valid"]].dropna(subset=["email"]).drop_duplicates("email")
    known = pd.Series(valid["email_valid"].to_numpy(), index=valid["email"].to_numpy())
    part = contact_identities(sub, sub_links.assign(kind="contact"), settings.valid_email_only, known)
    gone_ident = idents | set(part.identities["identity_id"])
    identities = pd.concat([prev.identities[~prev.identities["identity_id"].isin(gone_ident)], part.identities],
                           ignore_index=True)
    members_out = pd.concat([members[~sel], part.members], ignore_index=True)
    f = prev.findings
    sub_rk = pd.concat([sub["crm"] + "\x1f" + sub["id"], touched["crm"] + "\x1f" + touched["id"]])
    findings = pd.concat([f[~(f["crm"] + "\x1f" + f["id"]).isin(sub_rk) & ~f["identity_id"].isin(gone_ident)],
                          part.findings], ignore_index=True)
    return ContactIdentities(identities, members_out, findings)


def _splice(prev: pd.DataFrame, new: pd.DataFrame, gone: pd.Series, on: str = "id") -> pd.DataFrame:
    return pd.concat([prev[~prev[on].isin(gone)], new], ignore_index=True)


def incremental_transform(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None = None,
                          settings: TransformSettings | None = None) -> TransformResult:
    """The result of a full ``run_transform`` on the mirrors after ``delta`` (changed rows only, deletions
    as ``deleted=True`` rows), for the parts listed in the module docstring."""
    settings = settings or TransformSettings()
    contacts = update_contacts(prev.contacts, delta, links, settings)

    fields = dict(prev.fields)
    findings = prev.field_findings
    for key, frame in delta.frames.items():
        if key not in DEFAULT_FIELDS:
            continue
        live = delta.live(*key)
        values, f = map_fields(live, *key, DEFAULT_FIELDS[key] + tuple(settings.custom_fields.get(key, ())),
                               prev.owners)
        ids = text(frame["id"])
        fields[key] = _splice(prev.fields[key], values, ids)
        mask = (findings["crm"] == key[0]) & (findings["object"] == key[1]) & findings["id"].isin(ids)
        findings = pd.concat([findings[~mask], f], ignore_index=True)

    deal_stages, deals = prev.deal_stages, prev.deals
    touched_deals = _touched(delta, {(c, o) for c, o in DEAL_OBJECTS.items()})
    if len(touched_deals):
        hs = hubspot_stages(Mirrors({("hubspot", "pipelines"): prev.hubspot_pipelines}))
        rt = len(prev.deal_stages.loc[prev.deal_stages["crm"] == "salesforce", "pipeline"].unique())
        keys = deal_stage_keys(delta)
        mapped = map_deal_stages(keys, settings.stages, hs, settings.record_type_count or rt)
        other = touched_deals[touched_deals["crm"] != "hubspot"]
        rk = deal_stages["crm"] + "\x1f" + deal_stages["id"]
        deal_stages = pd.concat([deal_stages[~rk.isin(other["crm"] + "\x1f" + other["id"])], mapped],
                                ignore_index=True)
        for crm, obj in DEAL_OBJECTS.items():
            frame = delta.frames.get((crm, obj))
            if frame is None:
                continue
            live = text(delta.live(crm, obj)["id"])
            dead = text(frame.loc[frame["deleted"].astype(bool), "id"])
            col = f"{crm}_id"
            new = live[~live.isin(deals[col])]
            deals = deals[~(deals[col].isin(dead) & ~deals["linked"])]
            deals = pd.concat([deals, pd.DataFrame({"identity_id": crm + ":" + new, col: new, "linked": False})],
                              ignore_index=True)

    facts, pairs, rollups = prev.deal_facts, prev.hubspot_deal_contacts, prev.rollups
    deal_delta = delta.frames.get(("hubspot", "deals"))
    assoc_delta = delta.frames.get(("hubspot", "associations"))
    if deal_delta is not None or assoc_delta is not None:
        affected = pd.Series(dtype="string")
        if deal_delta is not None:
            ids = text(deal_delta["id"])
            new_facts = hubspot_deal_facts(Mirrors({("hubspot", "deals"): deal_delta,
                                                    ("hubspot", "pipelines"): prev.hubspot_pipelines}))
            facts = _splice(facts, new_facts, ids, "deal_id")
            affected = pd.concat([affected, pairs.loc[pairs["deal_id"].isin(ids), "contact_id"]])
        if assoc_delta is not None:
            gone = hubspot_deal_contacts(Mirrors({("hubspot", "associations"): assoc_delta.assign(deleted=False)}))
            added = hubspot_deal_contacts(Mirrors({("hubspot", "associations"): assoc_delta}))
            k = pairs["deal_id"] + "\x1f" + pairs["contact_id"]
            pairs = pd.concat([pairs[~k.isin(gone["deal_id"] + "\x1f" + gone["contact_id"])], added],
                              ignore_index=True).drop_duplicates(ignore_index=True)
            affected = pd.concat([affected, gone["contact_id"]])
        sub_pairs = pairs[pairs["contact_id"].isin(affected)]
        part = contact_rollups(facts[facts["deal_id"].isin(sub_pairs["deal_id"])], sub_pairs)
        rollups = _splice(rollups, part, affected, "contact_id")

    return dataclasses.replace(prev, contacts=contacts, fields=fields,
                               field_findings=findings, deal_stages=deal_stages, deals=deals, deal_facts=facts,
                               hubspot_deal_contacts=pairs, rollups=rollups)

"""Incremental transform: given the previous result and only the records changed since, recompute what they
touch (Invariant 6: work proportional to the change, not to the CRM).

``incremental_changes`` returns, per result table, the rows to remove (by key) and to add: what the Dagster
asset writes to the state database, at a cost that follows the change. ``apply_changes`` rebuilds the full
frames (O(result size); tests use it to compare with a full recompute).

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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TableChange:
    """How one result table changes: rows whose ``key`` values are in ``removed`` go, ``added`` rows come.

    This is what an incremental run writes to the state database (delete by key, then insert), so its cost
    follows the change; ``apply_changes`` builds the full frames from it (for tests and in-memory use).
    """

    key: tuple[str, ...]
    removed: pd.DataFrame
    added: pd.DataFrame

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        if len(self.removed):
            if len(self.key) == 1:
                gone = frame[self.key[0]].isin(self.removed[self.key[0]])
            else:
                gone = _joined(frame, self.key).isin(_joined(self.removed, self.key))
            frame = frame[~gone.to_numpy(dtype=bool)]
        return pd.concat([frame, self.added], ignore_index=True) if len(self.added) else frame.reset_index(drop=True)


def _joined(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    out = frame[key[0]].astype(str)
    for k in key[1:]:
        out = out + "\x1f" + frame[k].astype(str)
    return out


def _touched(delta: Mirrors, keys) -> pd.DataFrame:
    parts = [pd.DataFrame({"crm": crm, "id": text(f["id"]).to_numpy()}) for (crm, obj), f in delta.frames.items()
             if (crm, obj) in keys]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"crm": [], "id": []})
    return out.astype("string").drop_duplicates()


def contact_changes(prev: ContactIdentities, delta: Mirrors, links: pd.DataFrame | None,
                    settings: TransformSettings) -> dict[str, TableChange]:
    """Rebuild the changed records' component. Members carry the records' own columns, so the component's
    records are taken from them by position; no second copy of all records is kept."""
    touched = _touched(delta, CONTACT_OBJECTS)
    if touched.empty:
        return {}
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
    first = hit | (m_id.isin(ids - set(touched["id"])).to_numpy() if ids - set(touched["id"]) else False)
    none = np.zeros(len(members), dtype=bool)
    for _ in range(_MAX_CLOSURE):
        # a scan of a million values per lookup: skip the empty ones (most rounds after the first)
        grow = (ident.isin(new_i).to_numpy() if new_i else none) | (key.isin(new_k).to_numpy() if new_k else none)
        grow = grow | first
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
    removed = members.loc[sel, ["crm", "id"]]
    removed = pd.concat([removed, touched], ignore_index=True).drop_duplicates(ignore_index=True)
    f = prev.findings
    stale = f["identity_id"].isin(gone_ident)  # findings are few (the ambiguous records)
    return {
        "contact_identities": TableChange(("identity_id",), pd.DataFrame({"identity_id": sorted(gone_ident)}),
                                          part.identities),
        "contact_members": TableChange(("crm", "id"), removed, part.members),
        "contact_findings": TableChange(("crm", "id"), pd.concat([removed, f.loc[stale, ["crm", "id"]]],
                                                                 ignore_index=True), part.findings),
    }


def incremental_changes(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None = None,
                        settings: TransformSettings | None = None) -> dict[str, TableChange]:
    """What the changed rows in ``delta`` (deletions as ``deleted=True`` rows) change in each result table,
    for the parts listed in the module docstring; keys: ``contact_identities``, ``contact_members``,
    ``contact_findings``, ``fields:<crm>.<object>``, ``field_findings``, ``deal_stages``, ``deal_identities``,
    ``deal_facts``, ``hubspot_deal_contacts``, ``contact_rollups``."""
    settings = settings or TransformSettings()
    changes = contact_changes(prev.contacts, delta, links, settings)

    removed_findings, added_findings = [], []
    for key, frame in delta.frames.items():
        if key not in DEFAULT_FIELDS:
            continue
        values, f = map_fields(delta.live(*key), *key,
                               DEFAULT_FIELDS[key] + tuple(settings.custom_fields.get(key, ())), prev.owners)
        ids = pd.DataFrame({"id": text(frame["id"]).to_numpy(dtype=object)})
        changes[f"fields:{key[0]}.{key[1]}"] = TableChange(("id",), ids, values)
        removed_findings.append(ids.assign(crm=key[0], object=key[1]))
        added_findings.append(f)
    if removed_findings:
        changes["field_findings"] = TableChange(("crm", "object", "id"), pd.concat(removed_findings),
                                                pd.concat(added_findings, ignore_index=True))

    touched_deals = _touched(delta, {(c, o) for c, o in DEAL_OBJECTS.items()})
    if len(touched_deals):
        hs = hubspot_stages(Mirrors({("hubspot", "pipelines"): prev.hubspot_pipelines}))
        rt = len(prev.deal_stages.loc[prev.deal_stages["crm"] == "salesforce", "pipeline"].unique())
        mapped = map_deal_stages(deal_stage_keys(delta), settings.stages, hs, settings.record_type_count or rt)
        changes["deal_stages"] = TableChange(("crm", "id"), touched_deals[touched_deals["crm"] != "hubspot"],
                                             mapped)
        deals = prev.deals
        gone, new_rows = [], []
        for crm, obj in DEAL_OBJECTS.items():
            frame = delta.frames.get((crm, obj))
            if frame is None:
                continue
            live = text(delta.live(crm, obj)["id"])
            dead = text(frame.loc[frame["deleted"].astype(bool), "id"])
            col = f"{crm}_id"
            # scan the big column against the few changed ids (cheaper than hashing the big column)
            known = set(deals.loc[deals[col].isin(live), col])
            new = live[~live.isin(known)]
            if len(dead):
                gone.append(deals.loc[deals[col].isin(dead) & ~deals["linked"], ["identity_id"]])
            if len(new):
                new_rows.append(pd.DataFrame({"identity_id": crm + ":" + new, col: new, "linked": False}))
        changes["deal_identities"] = TableChange(
            ("identity_id",), pd.concat(gone, ignore_index=True) if gone else pd.DataFrame({"identity_id": []}),
            pd.concat(new_rows, ignore_index=True) if new_rows else pd.DataFrame())

    deal_delta = delta.frames.get(("hubspot", "deals"))
    assoc_delta = delta.frames.get(("hubspot", "associations"))
    if deal_delta is not None or assoc_delta is not None:
        facts, pairs = prev.deal_facts, prev.hubspot_deal_contacts
        affected = [pd.Series([], dtype=object)]
        if deal_delta is not None:
            ids = pd.DataFrame({"deal_id": text(deal_delta["id"]).to_numpy(dtype=object)})
            new_facts = hubspot_deal_facts(Mirrors({("hubspot", "deals"): deal_delta,
                                                    ("hubspot", "pipelines"): prev.hubspot_pipelines}))
            changes["deal_facts"] = TableChange(("deal_id",), ids, new_facts)
            affected.append(pairs.loc[pairs["deal_id"].isin(ids["deal_id"]), "contact_id"])
        if assoc_delta is not None:
            gone_pairs = hubspot_deal_contacts(
                Mirrors({("hubspot", "associations"): assoc_delta.assign(deleted=False)}))
            added_pairs = hubspot_deal_contacts(Mirrors({("hubspot", "associations"): assoc_delta}))
            changes["hubspot_deal_contacts"] = TableChange(("deal_id", "contact_id"), gone_pairs, added_pairs)
            affected.append(gone_pairs["contact_id"])
        contacts = pd.concat(affected, ignore_index=True).drop_duplicates()
        # the affected contacts' deals, after the change
        sub_pairs = changes["hubspot_deal_contacts"].apply(pairs[pairs["contact_id"].isin(contacts)]) \
            if "hubspot_deal_contacts" in changes else pairs[pairs["contact_id"].isin(contacts)]
        sub_facts = facts[facts["deal_id"].isin(sub_pairs["deal_id"])]
        if "deal_facts" in changes:
            sub_facts = changes["deal_facts"].apply(sub_facts)
        changes["contact_rollups"] = TableChange(("contact_id",), pd.DataFrame({"contact_id": contacts}),
                                                 contact_rollups(sub_facts, sub_pairs))
    return changes


def apply_changes(prev: TransformResult, changes: dict[str, TableChange]) -> TransformResult:
    """The full result after ``changes`` (O(size of the result): for tests and in-memory use; the Dagster
    asset writes the changes to the state database instead)."""
    def upd(name: str, frame: pd.DataFrame) -> pd.DataFrame:
        return changes[name].apply(frame) if name in changes else frame

    contacts = ContactIdentities(upd("contact_identities", prev.contacts.identities),
                                 upd("contact_members", prev.contacts.members),
                                 upd("contact_findings", prev.contacts.findings))
    fields = {key: upd(f"fields:{key[0]}.{key[1]}", frame) for key, frame in prev.fields.items()}
    pairs = upd("hubspot_deal_contacts", prev.hubspot_deal_contacts).drop_duplicates(ignore_index=True)
    return dataclasses.replace(
        prev, contacts=contacts, fields=fields, field_findings=upd("field_findings", prev.field_findings),
        deal_stages=upd("deal_stages", prev.deal_stages), deals=upd("deal_identities", prev.deals),
        deal_facts=upd("deal_facts", prev.deal_facts), hubspot_deal_contacts=pairs,
        rollups=upd("contact_rollups", prev.rollups))


def incremental_transform(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None = None,
                          settings: TransformSettings | None = None) -> TransformResult:
    """The result of a full ``run_transform`` on the mirrors after ``delta``, for the parts listed in the
    module docstring: ``incremental_changes`` then ``apply_changes``."""
    return apply_changes(prev, incremental_changes(prev, delta, links, settings))

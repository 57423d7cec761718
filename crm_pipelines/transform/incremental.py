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
- contact rollups: the contacts associated (before or after) with a changed deal or association;
- association pairs (record level, with the record each pair comes from) and company domains: the delta's
  records replace their own rows;
- company identities (COM-1/COM-3) and findings: the records the change touches (changed companies/accounts,
  both ends of contact->company pairs that changed, the companies of every contact of an identity the
  rebuild changed (``Moved``: its row, or its records' identity, role or email; a renamed contact moves
  nothing), changed company links), closed over links, previous matches, shared contact identities and
  equal domains, are re-matched with the full run's ``match_companies``. Matching only looks inside that
  connected set, so the rows outside it cannot change;
- Account candidates (COM-2): the HubSpot companies of that set (their contacts' identities lie in it);
- contact->company, deal->contact, deal->company (DEAL-6): every row with a changed (``Moved``) or rebuilt
  company/deal identity on either side, or an identity of a pair that changed, is rebuilt from all record
  pairs of those identities;
- lifecycle (CON-9, DEAL-7): HubSpot contacts changed, in the rebuilt contact component, or with a changed
  deal/association; company lifecycle (COM-4): their companies (before and after), changed companies and
  both ends of changed HubSpot pairs.

Lookups in the big previous tables go through the column indexes ``run_transform`` builds and carries with
its result (``lookup.build_lookups``; a binary search per looked-up value instead of a scan of the table);
frames without one - a result rebuilt by ``apply_changes``, small frames - are scanned with ``isin``, with the
same answer. Call ``build_lookups(result)`` on a result that will serve several incremental runs.

Every read of a big previous table is such a lookup (``_isin``, ``_rows``, ``_Replaced``, ``_Overlay``): the
``unified`` asset runs this over a result that holds only the rows looked up so far and reads the rest from
the state database as they are asked for (``defs/unified/stored_result.py``). Reading a big previous table
any other way (a scan, a filter on another column, its length) would see only part of it; the small ones
read whole are listed there.

Not incremental: a change of the owners, the HubSpot pipelines, Salesforce stages/record types, the deal
links or the settings (they reach every record) - run ``run_transform`` for those.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines import catalog
from crm_pipelines.transform import associations as assoc
from crm_pipelines.transform.companies import (
    CompanyIdentities,
    account_creation_candidates,
    company_contact_pairs,
    company_domains,
    match_companies,
)
from crm_pipelines.transform.deals import DEAL_OBJECTS
from crm_pipelines.transform.fields import DEFAULT_FIELDS, map_fields
from crm_pipelines.transform.frames import Mirrors, links_of, text
from crm_pipelines.transform.identities import (
    IDENTITY_COLUMNS,
    MEMBER_COLUMNS,
    RECORD_COLUMNS,
    ContactIdentities,
    contact_identities,
    contact_records,
)
from crm_pipelines.transform.lifecycle import company_lifecycle, contact_lifecycle
from crm_pipelines.transform.lookup import Lookups, lookups_of
from crm_pipelines.transform.lookup import isin as _lk_isin
from crm_pipelines.transform.pipeline import TransformResult, TransformSettings
from crm_pipelines.transform.rollups import contact_rollups, hubspot_deal_contacts, hubspot_deal_facts
from crm_pipelines.transform.stages import deal_stage_keys, hubspot_stages, map_deal_stages

CONTACT_OBJECTS = catalog.paired_with("contacts")  # the catalog's contact-like objects of every CRM
_MAX_CLOSURE = 20
# the indexes of the result being updated (set for the duration of ``incremental_changes``, per thread)
_LK: ContextVar[Lookups | None] = ContextVar("crm_pipelines_transform_lookups", default=None)


def _isin(frame: pd.DataFrame, col: str, values) -> np.ndarray:
    """``frame[col].isin(values)`` (bool array), by the previous result's index when ``frame`` has one."""
    return _lk_isin(_LK.get(), frame, col, values)


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
    return _contact_component(prev, delta, links, settings)[0]


def _contact_component(prev: ContactIdentities, delta: Mirrors, links: pd.DataFrame | None,
                       settings: TransformSettings
                       ) -> tuple[dict[str, TableChange], set, ContactIdentities | None, Moved | None]:
    """``contact_changes`` plus what the later steps need: every identity id of the rebuilt component
    (before and after), the rebuilt part itself, and what of it changed (``Moved``)."""
    touched = _touched(delta, CONTACT_OBJECTS)
    if touched.empty:
        return {}, set(), None, None
    new_recs = contact_records(delta, settings.dynamics_entities)
    members = prev.members
    m_id = members["id"]
    hit = _isin(members, "id", touched["id"])
    if hit.any():  # ids are unique per CRM; confirm the CRM on the few hits
        pos = np.flatnonzero(hit)
        pair = members["crm"].iloc[pos].to_numpy(dtype=object) + "\x1f" + m_id.iloc[pos].to_numpy(dtype=object)
        hit[pos] = pd.Series(pair).isin(touched["crm"] + "\x1f" + touched["id"]).to_numpy()
    # read by position: the rows a lookup found, never a whole column
    email, ident = members["email"], members["identity_id"]

    def usable_at(pos: np.ndarray) -> np.ndarray:
        u = members["email_valid"].iloc[pos] if settings.valid_email_only else email.iloc[pos].notna()
        return u.fillna(False).to_numpy(dtype=bool)

    def keys_at(mask: np.ndarray) -> set:
        pos = np.flatnonzero(mask)
        return set(email.iloc[pos[usable_at(pos)]].dropna())

    def at(col: pd.Series, mask: np.ndarray) -> set:
        return set(col.iloc[np.flatnonzero(mask)].dropna())

    new_keys = set(new_recs["email_raw"].astype("string").str.strip().str.lower().dropna())
    keys = keys_at(hit) | new_keys
    idents = at(ident, hit) | {"email:" + k for k in keys}
    link = links_of(links, "contact")
    link_ident = "link:" + link["hubspot_id"]
    conv_id = members["converted_contact_id"]
    ids = set(touched["id"]) | set(new_recs["converted_contact_id"].dropna())
    sel = np.zeros(len(members), dtype=bool)
    new_i, new_k, new_ids = idents, keys, ids
    first = hit | (_isin(members, "id", ids - set(touched["id"])) if ids - set(touched["id"]) else False)
    none = np.zeros(len(members), dtype=bool)
    for _ in range(_MAX_CLOSURE):
        # a scan of a million values per lookup: skip the empty ones (most rounds after the first)
        grow = _isin(members, "identity_id", new_i) if new_i else none
        if new_k:
            m = _isin(members, "email", new_k)
            pos = np.flatnonzero(m)
            m[pos[~usable_at(pos)]] = False
            grow = grow | m
        grow = grow | first
        first = False
        if new_ids:
            # Lead conversions tie a Lead to its Contact, both ways
            extra = at(conv_id, _isin(members, "id", new_ids)) | at(m_id, _isin(members, "converted_contact_id",
                                                                               new_ids))
            if len(link):
                lk = link_ident.isin(new_i) | link["salesforce_id"].isin(new_ids) | link["hubspot_id"].isin(
                    new_ids) | link["dynamics_id"].isin(new_ids)
                extra |= set(link.loc[lk, ["hubspot_id", "salesforce_id", "dynamics_id"]].stack().dropna())
                idents = idents | set(link_ident[lk])
            extra -= ids
            if extra:
                grow |= _isin(members, "id", extra)
                ids = ids | extra
        added = grow & ~sel
        sel |= grow
        new_i = at(ident, added) - idents
        new_k = keys_at(added) - keys
        new_ids = set(m_id.iloc[np.flatnonzero(added)]) - ids
        idents, keys, ids = idents | new_i, keys | new_k, ids | new_ids
        if not (new_i or new_k or new_ids):
            break
    keep_old = sel & ~hit
    sel_pos = np.flatnonzero(sel)
    sub = pd.concat([members.iloc[np.flatnonzero(keep_old)][list(RECORD_COLUMNS)], new_recs], ignore_index=True)
    sub_links = link[link_ident.isin(idents)]
    valid = members.iloc[sel_pos][["email", "email_valid"]].dropna(subset=["email"]).drop_duplicates("email")
    known = pd.Series(valid["email_valid"].to_numpy(), index=valid["email"].to_numpy())
    part = contact_identities(sub, sub_links.assign(kind="contact"), settings.valid_email_only, known)
    gone_ident = idents | set(part.identities["identity_id"])
    removed = members.iloc[sel_pos][["crm", "id"]]
    removed = pd.concat([removed, touched], ignore_index=True).drop_duplicates(ignore_index=True)
    f = prev.findings
    stale = _isin(f, "identity_id", gone_ident)
    old_rows = members.iloc[sel_pos]
    moved = _moved(old_rows, part.members, prev.identities[_isin(prev.identities, "identity_id", gone_ident)],
                   part.identities)
    return {
        "contact_identities": TableChange(("identity_id",), pd.DataFrame({"identity_id": sorted(gone_ident)}),
                                          part.identities),
        "contact_members": TableChange(("crm", "id"), removed, part.members),
        "contact_findings": TableChange(("crm", "id"), pd.concat([removed, f.loc[stale, ["crm", "id"]]],
                                                                 ignore_index=True), part.findings),
    }, gone_ident, part, moved


# what the company matching and the identity associations read of a contact record (not when it was modified)
_COMPARED = tuple(c for c in MEMBER_COLUMNS if c != "modified_at")
_NULL = "\x00"  # a missing value, as the rows are compared (as text)


@dataclass
class Moved:
    """Of a rebuilt contact component, what changed for the steps after it: the identities whose row changed
    or whose records (or their roles, emails) did, and every record of those identities, before and after. An
    edit that changes none of that (a name, a phone number) moves nothing: no company is matched again and no
    association rebuilt for it."""

    identities: set
    records: pd.DataFrame  # crm, id


def _moved(old_members: pd.DataFrame, new_members: pd.DataFrame, old_identities: pd.DataFrame,
           new_identities: pd.DataFrame) -> Moved:
    gone, came = _one_sided(old_members, new_members, _COMPARED)
    idents = set(pd.concat([*_one_sided(old_identities, new_identities, IDENTITY_COLUMNS), gone, came])["identity_id"]
                 .dropna())
    records = [gone[["crm", "id"]], came[["crm", "id"]]]
    for frame in (old_members, new_members):
        records.append(frame.loc[frame["identity_id"].isin(idents).to_numpy(dtype=bool), ["crm", "id"]])
    out = pd.concat(records, ignore_index=True).astype(object).drop_duplicates(ignore_index=True)
    return Moved(idents, out)


def _deal_links(deals: pd.DataFrame, delta: Mirrors, links: pd.DataFrame | None) -> tuple[pd.DataFrame,
                                                                                           pd.DataFrame]:
    """The deal links (written by the sync: deals are linked by nothing else, DEAL-5) of the deals in ``delta``:
    their identities as ``deals.deal_identities`` makes them (``hubspot:<id>``, linked), and the identities they
    replace (the records' own, unlinked, and the link's earlier row). A copy the writes created is read back
    here: without this its source and it would stay two identities, and each be created again in the other's
    CRM."""
    link = links_of(links, "deal").dropna(subset=["hubspot_id"]).drop_duplicates("hubspot_id")
    if link.empty:
        return pd.DataFrame(), pd.DataFrame({"identity_id": []})
    hit = np.zeros(len(link), dtype=bool)
    for crm, obj in DEAL_OBJECTS.items():
        if (crm, obj) in delta.frames:
            hit |= link[f"{crm}_id"].isin(set(text(delta.live(crm, obj)["id"]))).fillna(False).to_numpy(dtype=bool)
    link = link[hit]
    if link.empty:
        return pd.DataFrame(), pd.DataFrame({"identity_id": []})
    rows = link[["hubspot_id", "salesforce_id", "dynamics_id"]].assign(identity_id="hubspot:" + link["hubspot_id"],
                                                                         linked=True)
    replaced = _isin(deals, "identity_id", rows["identity_id"])
    for crm in ("salesforce", "dynamics"):
        replaced |= _isin(deals, f"{crm}_id", rows[f"{crm}_id"].dropna())
    return rows.reset_index(drop=True), deals.loc[replaced, ["identity_id"]]


def incremental_changes(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None = None,
                        settings: TransformSettings | None = None) -> dict[str, TableChange]:
    """What the changed rows in ``delta`` (deletions as ``deleted=True`` rows) change in each result table,
    for the parts listed in the module docstring; keys: ``contact_identities``, ``contact_members``,
    ``contact_findings``, ``fields:<crm>.<object>``, ``field_findings``, ``deal_stages``, ``deal_identities``,
    ``deal_facts``, ``hubspot_deal_contacts``, ``contact_rollups``."""
    token = _LK.set(lookups_of(prev))
    try:
        return _incremental_changes(prev, delta, links, settings)
    finally:
        _LK.reset(token)


def _incremental_changes(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None,
                         settings: TransformSettings | None) -> dict[str, TableChange]:
    settings = settings or TransformSettings()
    changes, gone_contacts, part, moved = _contact_component(prev.contacts, delta, links, settings)

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
        linked, bound = _deal_links(deals, delta, links)
        if len(linked):
            gone.append(bound)
            new_rows.append(linked)
        for crm, obj in DEAL_OBJECTS.items():
            frame = delta.frames.get((crm, obj))
            if frame is None:
                continue
            live = text(delta.live(crm, obj)["id"])
            dead = text(frame.loc[frame["deleted"].astype(bool), "id"])
            col = f"{crm}_id"
            # scan the big column against the few changed ids (cheaper than hashing the big column)
            known = set(deals.loc[_isin(deals, col, live), col])
            if len(linked):
                known |= set(linked[col].dropna())
            new = live[~live.isin(known)]
            if len(dead):
                gone.append(deals.loc[_isin(deals, col, dead) & ~deals["linked"].to_numpy(dtype=bool), ["identity_id"]])
            if len(new):
                new_rows.append(pd.DataFrame({"identity_id": crm + ":" + new, col: new, "linked": False}))
        changes["deal_identities"] = TableChange(
            ("identity_id",), pd.concat(gone, ignore_index=True) if gone else pd.DataFrame({"identity_id": []}),
            pd.concat(new_rows, ignore_index=True) if new_rows else pd.DataFrame())

    deal_delta = delta.frames.get(("hubspot", "deals"))
    assoc_delta = delta.frames.get(("hubspot", "associations"))
    contact_delta = delta.frames.get(("hubspot", "contacts"))
    if deal_delta is not None or assoc_delta is not None or contact_delta is not None:
        facts, pairs = prev.deal_facts, prev.hubspot_deal_contacts
        affected = [pd.Series([], dtype=object)]
        if contact_delta is not None:  # a contact deleted (or restored) loses (or regains) its rollup row
            affected.append(text(contact_delta["id"]).astype(object))
        if deal_delta is not None:
            ids = pd.DataFrame({"deal_id": text(deal_delta["id"]).to_numpy(dtype=object)})
            new_facts = hubspot_deal_facts(Mirrors({("hubspot", "deals"): deal_delta,
                                                    ("hubspot", "pipelines"): prev.hubspot_pipelines}))
            changes["deal_facts"] = TableChange(("deal_id",), ids, new_facts)
            affected.append(pairs.loc[_isin(pairs, "deal_id", ids["deal_id"]), "contact_id"])
        if assoc_delta is not None:
            gone_pairs = hubspot_deal_contacts(
                Mirrors({("hubspot", "associations"): assoc_delta.assign(deleted=False)}))
            added_pairs = hubspot_deal_contacts(Mirrors({("hubspot", "associations"): assoc_delta}))
            changes["hubspot_deal_contacts"] = TableChange(("deal_id", "contact_id"), gone_pairs, added_pairs)
            affected.append(gone_pairs["contact_id"])
        contacts = pd.concat(affected, ignore_index=True).drop_duplicates()
        # the affected contacts' deals, after the change
        sub_pairs = changes["hubspot_deal_contacts"].apply(pairs[_isin(pairs, "contact_id", contacts)]) \
            if "hubspot_deal_contacts" in changes else pairs[_isin(pairs, "contact_id", contacts)]
        sub_facts = facts[_isin(facts, "deal_id", sub_pairs["deal_id"])]
        if "deal_facts" in changes:
            sub_facts = changes["deal_facts"].apply(sub_facts)
        changes["contact_rollups"] = TableChange(("contact_id",), pd.DataFrame({"contact_id": contacts}),
                                                 contact_rollups(sub_facts, sub_pairs, _live_hubspot_contacts(
                                                     prev, delta, contacts)))
    related_changes(prev, delta, links, settings, changes, gone_contacts, part, moved)
    return changes


def _live_hubspot_contacts(prev: TransformResult, delta: Mirrors, ids: pd.Series) -> set:
    """Which of ``ids`` are live HubSpot contacts after the change: the delta's own word for the contacts it
    carries, the previous members (live records only) for the rest."""
    members = prev.contacts.members
    hit = _isin(members, "id", ids)
    live = set(members.loc[hit & (members["crm"] == "hubspot").to_numpy(), "id"])
    frame = delta.frames.get(("hubspot", "contacts"))
    if frame is not None:
        live -= set(text(frame["id"]).dropna())
        live |= set(text(delta.live("hubspot", "contacts")["id"]).dropna())
    return live


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
    companies = CompanyIdentities(upd("company_identities", prev.companies.identities),
                                  upd("company_findings", prev.companies.findings))
    links = changes["company_links"].added if "company_links" in changes else prev.company_links
    return dataclasses.replace(
        prev, contacts=contacts, fields=fields, field_findings=upd("field_findings", prev.field_findings),
        deal_stages=upd("deal_stages", prev.deal_stages), deals=upd("deal_identities", prev.deals),
        deal_facts=upd("deal_facts", prev.deal_facts), hubspot_deal_contacts=pairs,
        rollups=upd("contact_rollups", prev.rollups), companies=companies,
        account_candidates=upd("account_candidates", prev.account_candidates),
        contact_company=upd("contact_company", prev.contact_company),
        deal_contact=upd("deal_contact", prev.deal_contact), deal_company=upd("deal_company", prev.deal_company),
        lifecycle=upd("lifecycle", prev.lifecycle), company_lifecycle=upd("company_lifecycle", prev.company_lifecycle),
        company_pair_src=upd("company_pair_src", prev.company_pair_src),
        deal_contact_src=upd("deal_contact_src", prev.deal_contact_src),
        deal_company_src=upd("deal_company_src", prev.deal_company_src),
        company_domains=upd("company_domains", prev.company_domains), company_links=links)


def incremental_transform(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None = None,
                          settings: TransformSettings | None = None) -> TransformResult:
    """The result of a full ``run_transform`` on the mirrors after ``delta``, for the parts listed in the
    module docstring: ``incremental_changes`` then ``apply_changes``."""
    return apply_changes(prev, incremental_changes(prev, delta, links, settings))


# --- companies, Account candidates, identity associations, lifecycle -------------------------------------------
#
# These read record-level state the full run keeps in ``TransformResult`` (association pairs with their source
# record, normalized company domains, company links). Every lookup below is ``_isin`` of a big column against
# the few ids the change touches: through the result's column index when it has one (cost follows the ids),
# else a hash probe per row; no join or sort of the big tables.

_ROLES = ("linked", "matched", "converted")
COMPANY_PAIR_OBJECTS = {("hubspot", "associations"), ("salesforce", "Contact"), ("dynamics", "contacts"),
                        ("dynamics", "leads")}
DEAL_CONTACT_OBJECTS = {("hubspot", "associations"), ("salesforce", "OpportunityContactRole"),
                        ("dynamics", "opportunities")}
DEAL_COMPANY_OBJECTS = {("hubspot", "associations"), ("salesforce", "Opportunity"), ("dynamics", "opportunities")}
COMPANY_OBJECTS = catalog.paired_with("companies")


def _ix(values) -> pd.Index:
    return pd.Index(list(values), dtype=object)


def _crm_key(frame: pd.DataFrame, col: str = "id") -> pd.Series:
    return frame["crm"].astype(object) + "\x1f" + frame[col].astype(object)


def _by_crm(frame: pd.DataFrame, col: str = "id") -> dict[str, set]:
    return {crm: set(g[col].dropna()) for crm, g in frame.groupby("crm")} if len(frame) else {}


def _rows(frame: pd.DataFrame, col: str, records: pd.DataFrame, rec_col: str = "id") -> pd.DataFrame:
    """Rows of ``frame`` whose (crm, ``col``) is one of ``records``' (crm, ``rec_col``): scan by id, then
    confirm the CRM on the few hits (ids are unique per CRM only)."""
    if records.empty:  # (an empty ``frame`` is still asked: a partly read result notes what it lacks)
        return frame.iloc[:0]
    hit = frame[_isin(frame, col, records[rec_col].unique())]
    return hit[_crm_key(hit, col).isin(_ix(_crm_key(records, rec_col)))]


def _row_texts(frame: pd.DataFrame) -> pd.Series:
    """Each row as one text (its values, missing ones as ``_NULL``), to compare rows of like frames."""
    texts = [frame[c].astype(object).where(frame[c].notna(), _NULL).astype(str) for c in frame.columns]
    out = texts[0]
    for t in texts[1:]:
        out = out + "\x1f" + t
    return out


def _one_sided(old: pd.DataFrame, new: pd.DataFrame, cols: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``old`` that ``new`` lacks and those of ``new`` that ``old`` lacks, compared on ``cols``."""
    old_t, new_t = _row_texts(old.reindex(columns=list(cols))), _row_texts(new.reindex(columns=list(cols)))
    return old[~old_t.isin(set(new_t)).to_numpy()], new[~new_t.isin(set(old_t)).to_numpy()]


class _Replaced:
    """A record-level table after the delta's records replaced their rows (``keys``: crm + ``key_col``), read
    without copying it: every read is a lookup in the previous table plus the new rows."""

    def __init__(self, prev: pd.DataFrame, keys: pd.DataFrame | None, added: pd.DataFrame, key_col: str) -> None:
        self.prev, self.added = prev, added
        self.removed = _rows(prev, key_col, keys, key_col) if keys is not None and len(keys) else prev.iloc[:0]

    def _old(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows[~rows.index.isin(self.removed.index)] if len(self.removed) and len(rows) else rows

    def where(self, col: str, records: pd.DataFrame, rec_col: str = "id") -> pd.DataFrame:
        """New-state rows whose (crm, ``col``) is among ``records``."""
        old = self._old(_rows(self.prev, col, records, rec_col))
        return pd.concat([old, _rows(self.added, col, records, rec_col)], ignore_index=True)

    def where_value(self, col: str, values) -> pd.DataFrame:
        """New-state rows whose ``col`` is one of ``values`` (any CRM)."""
        values = _ix(values)
        old = self._old(self.prev[_isin(self.prev, col, values)])
        return pd.concat([old, self.added[self.added[col].isin(values)]], ignore_index=True)

    def changed(self) -> pd.DataFrame:
        return pd.concat([self.removed, self.added], ignore_index=True)

    def differing(self) -> pd.DataFrame:
        """``changed`` less the rows the delta's records put back as they were (a Contact edited but not moved
        to another Account keeps its pair): the rows whose ends may see a change."""
        if not len(self.removed) or not len(self.added):
            return self.changed()
        return pd.concat(_one_sided(self.removed, self.added, list(self.added.columns)), ignore_index=True)


class _Pairs(_Replaced):
    """A record-pair table after the delta's records replaced their pairs."""

    def __init__(self, prev: pd.DataFrame, delta: Mirrors, objects: set, build) -> None:
        keys = [pd.DataFrame({"crm": crm, "src": text(f["id"]).to_numpy(dtype=object)})
                for (crm, obj), f in delta.frames.items() if (crm, obj) in objects]
        self.change = None
        if keys:
            keys = pd.concat(keys, ignore_index=True).drop_duplicates()
            added = build(Mirrors({k: f for k, f in delta.frames.items() if k in objects}), src=True)
            self.change = TableChange(("crm", "src"), keys, added)
            super().__init__(prev, keys, added, "src")
        else:
            super().__init__(prev, None, prev.iloc[:0], "src")


class _Overlay:
    """Record -> identity after the change: the previous rows minus the rebuilt identities (``dead``) plus
    the rebuilt rows (``new``, long: crm, id, identity_id, ...). ``base`` is long (contact members) or wide
    (company/deal identities, one ``<crm>_id`` column per CRM)."""

    def __init__(self, base: pd.DataFrame, dead: set, new: pd.DataFrame, wide: bool, roles: bool = False) -> None:
        self.base, self.dead, self.new, self.wide, self.roles = base, _ix(dead), new, wide, roles
        # a rebuilt record's answer is its ``new`` row: its previous rows carry a rebuilt (dead) identity
        self.asked: set = set(_crm_key(new)) if len(new) else set()
        self.memo: list[pd.DataFrame] = [new.reset_index(drop=True)]

    def _long(self, rows: pd.DataFrame) -> pd.DataFrame:
        if not self.wide:
            return rows
        parts = [pd.DataFrame({"crm": crm, "id": rows[f"{crm}_id"], "identity_id": rows["identity_id"]})
                 for crm in assoc.CRMS]
        return pd.concat(parts, ignore_index=True).dropna(subset=["id"])

    def _done(self, base_rows: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
        base_rows = base_rows[~base_rows["identity_id"].isin(self.dead)]
        out = pd.concat([self._long(base_rows), new_rows], ignore_index=True)
        if self.roles:
            out = out[out["role"].isin(_ROLES)]
        return out

    def records_of(self, idents: pd.Index) -> pd.DataFrame:
        """Every record (crm, id, identity_id) of these identities."""
        if not len(idents):
            return self.new.iloc[:0]
        live = idents.difference(self.dead)
        # a rebuilt identity's records are all in ``new``: the big scan is only for the others
        base = self.base[_isin(self.base, "identity_id", live)] if len(live) else self.base.iloc[:0]
        return self._done(base, self.new[self.new["identity_id"].isin(idents)])

    def of(self, records: pd.DataFrame, rec_col: str = "id", all_roles: bool = False) -> pd.DataFrame:
        """The identity rows of these records (crm, ``rec_col``). Answers are remembered: the steps below ask
        about overlapping records, and each unanswered question costs a scan of the big table."""
        if records.empty:
            return self.new.iloc[:0]
        keys = set(_crm_key(records, rec_col).unique())
        todo = keys - self.asked
        if todo:
            self.asked |= todo
            ask = records[_crm_key(records, rec_col).isin(_ix(todo))]
            self.memo.append(self._fetch(ask, rec_col))
            self.memo = [pd.concat(self.memo, ignore_index=True)]
        memo = self.memo[0]
        out = memo[_crm_key(memo).isin(_ix(keys))]
        if self.roles and not all_roles:
            out = out[out["role"].isin(_ROLES)]
        return out

    def _fetch(self, records: pd.DataFrame, rec_col: str) -> pd.DataFrame:
        ids = _ix(records[rec_col].unique())
        if self.wide and "linked" in self.base:
            # deal identities are "<crm>:<id>" unless linked (DEAL-5): one scan of the identity column plus
            # the few linked rows, instead of one scan per CRM column
            base = self.base
            named = _ix((records["crm"].astype(object) + ":" + records[rec_col].astype(object)).unique())
            m = _isin(base, "identity_id", named)
            lk = np.flatnonzero(base["linked"].to_numpy(dtype=bool))
            if len(lk):
                sub = base.iloc[lk]
                hit = np.zeros(len(sub), dtype=bool)
                for crm in assoc.CRMS:
                    hit |= sub[f"{crm}_id"].isin(ids).to_numpy()
                m[lk[hit]] = True
            base_rows = base[m]
        elif self.wide:
            m = np.zeros(len(self.base), dtype=bool)
            for crm in assoc.CRMS:
                m |= _isin(self.base, f"{crm}_id", ids)
            base_rows = self.base[m]
        else:
            base_rows = self.base[_isin(self.base, "id", ids)]
        roles, self.roles = self.roles, False
        try:
            out = self._done(base_rows, self.new[self.new["id"].isin(ids)])
        finally:
            self.roles = roles
        return out[_crm_key(out).isin(_ix(_crm_key(records, rec_col)))]

    def lookup(self, records: pd.DataFrame, rec_col: str = "id") -> assoc.IdentityLookup:
        return assoc.IdentityLookup(self.of(records, rec_col))


def _idents(frame: pd.DataFrame, *cols: str) -> set:
    out: set = set()
    for c in cols:
        out |= set(frame[c].dropna())
    return out


def _assoc_change(prev_rows: pd.DataFrame, pairs: _Pairs, left: str, right: str, lcol: str, rcol: str,
                  left_ov: _Overlay, right_ov: _Overlay, left_touched: set, right_touched: set) -> TableChange:
    """An identity-association table: every row with a touched identity on either side is rebuilt from all
    record pairs of those identities; rows of untouched identities keep exactly the record pairs they had."""
    changed = pairs.differing()
    if len(changed):
        left_touched = left_touched | _idents(left_ov.of(changed, lcol), "identity_id")
        right_touched = right_touched | _idents(right_ov.of(changed, rcol), "identity_id")
    li, ri = _ix(left_touched), _ix(right_touched)
    lname, rname = f"{left}_identity", f"{right}_identity"
    gone = np.zeros(len(prev_rows), dtype=bool)
    for name, touched in ((lname, li), (rname, ri)):
        if len(touched):
            gone |= _isin(prev_rows, name, touched)
    gone = prev_rows[gone]
    lrec, rrec = left_ov.records_of(li), right_ov.records_of(ri)
    cand = pd.concat([pairs.where(lcol, lrec), pairs.where(rcol, rrec)], ignore_index=True)
    cand = cand[["crm", lcol, rcol]].drop_duplicates(ignore_index=True)
    added = assoc.identity_pairs(cand.rename(columns={lcol: left, rcol: right}), left, right,
                                 left_ov.lookup(cand, lcol), right_ov.lookup(cand, rcol))
    added = added[added[lname].isin(li) | added[rname].isin(ri)]
    return TableChange((lname, rname, "crm"), gone, added.reset_index(drop=True))


def related_changes(prev: TransformResult, delta: Mirrors, links: pd.DataFrame | None, settings: TransformSettings,
                    changes: dict[str, TableChange], gone_contacts: set, part: ContactIdentities | None,
                    moved: Moved | None) -> None:
    """Adds to ``changes`` the company identities, Account candidates (COM-1..3), identity associations
    (DEAL-6) and lifecycle proposals (CON-9, DEAL-7, COM-4) the change touches, plus the record-level state.
    ``moved``: what of the rebuilt contact component changed (None: no contact was rebuilt)."""
    new_members = part.members if part is not None else prev.contacts.members.iloc[:0]
    contact_ov = _Overlay(prev.contacts.members, gone_contacts, new_members, wide=False, roles=True)
    # every contact record whose identity or role may have changed: the rebuilt component, before and after
    k_records = pd.concat([new_members[["crm", "id"]], changes["contact_members"].removed[["crm", "id"]]]
                          if part is not None else [new_members[["crm", "id"]]],
                          ignore_index=True).astype(object).drop_duplicates(ignore_index=True)

    cpairs = _Pairs(prev.company_pair_src, delta, COMPANY_PAIR_OBJECTS, company_contact_pairs)
    dcpairs = _Pairs(prev.deal_contact_src, delta, DEAL_CONTACT_OBJECTS, assoc.deal_contact_pairs)
    dcopairs = _Pairs(prev.deal_company_src, delta, DEAL_COMPANY_OBJECTS, assoc.deal_company_pairs)
    for name, p in (("company_pair_src", cpairs), ("deal_contact_src", dcpairs), ("deal_company_src", dcopairs)):
        if p.change is not None:
            changes[name] = p.change

    # companies: the records the change touches, closed over links, shared contact identities and domains
    dom_keys = _touched(delta, COMPANY_OBJECTS)
    dom_added = company_domains(Mirrors({k: f for k, f in delta.frames.items() if k in COMPANY_OBJECTS}))
    domains = _Replaced(prev.company_domains, dom_keys, dom_added, "id")
    if len(dom_keys):
        changes["company_domains"] = TableChange(("crm", "id"), dom_keys, dom_added)
    link = links_of(links, "company")
    old_link = prev.company_links if len(prev.company_links.columns) else links_of(None, "company")
    lcols = ["hubspot_id", "salesforce_id", "dynamics_id"]
    both = old_link[lcols].merge(link[lcols], how="outer", indicator=True)
    link_diff = both[both["_merge"] != "both"]
    if len(link_diff):
        changes["company_links"] = TableChange(("kind",), pd.DataFrame({"kind": ["company"]}), link)
    seeds = [dom_keys, cpairs.differing().rename(columns={"company_id": "x"})[["crm", "x"]].rename(columns={"x": "id"})]
    # the companies of the contact records whose identity changed: an identity that stayed as it was matches its
    # companies as before
    moved_records = moved.records if moved is not None else k_records
    seeds.append(cpairs.where("contact_id", moved_records)[["crm", "company_id"]].rename(columns={"company_id": "id"}))
    for crm in assoc.CRMS:
        seeds.append(pd.DataFrame({"crm": crm, "id": link_diff[f"{crm}_id"].dropna().to_numpy(dtype=object)}))
    frontier = pd.concat(seeds, ignore_index=True).astype(object).dropna().drop_duplicates(ignore_index=True)
    nodes = frontier.iloc[:0]
    prev_co = prev.companies.identities
    seen_dom, seen_ident, seen_co = set(), set(), set()
    # Edges of the new state that the previous identity-level contact->company rows lack all start at a seed:
    # a rebuilt contact identity's records are all in the component (their companies are seeds), and a new
    # pair adds its company (a seed) and its contact's identity, followed from here.
    pending = _idents(contact_ov.of(cpairs.added, "contact_id"), "identity_id") if len(cpairs.added) else set()

    def in_rows(table: pd.DataFrame, recs: pd.DataFrame) -> np.ndarray:
        m = np.zeros(len(table), dtype=bool)
        for crm, ids in _by_crm(recs).items():
            m |= _isin(table, f"{crm}_id", ids)
        return m

    for _ in range(_MAX_CLOSURE):
        frontier = frontier[~_crm_key(frontier).isin(_ix(_crm_key(nodes)))] if len(nodes) else frontier
        if frontier.empty:
            break
        nodes = pd.concat([nodes, frontier], ignore_index=True)
        grow = []
        # equal domains
        doms = set(domains.where("id", frontier)["domain"].dropna()) - seen_dom
        seen_dom |= doms
        if doms:
            grow.append(domains.where_value("domain", doms)[["crm", "id"]])
        # links, and the previous matches (a row being rebuilt takes all its records with it)
        prev_rows = prev_co[in_rows(prev_co, frontier)]
        for table in (link[in_rows(link, frontier)], prev_rows):
            for c in assoc.CRMS:
                grow.append(pd.DataFrame({"crm": c, "id": table[f"{c}_id"].dropna().to_numpy(dtype=object)}))
        co_ident = prev_rows["identity_id"]
        new_co = set(co_ident) - seen_co
        seen_co |= new_co
        cc = prev.contact_company
        idents = set(cc.loc[_isin(cc, "company_identity", new_co), "contact_identity"]) if new_co else set()
        idents, pending = (idents | pending) - seen_ident, set()
        seen_ident |= idents
        if idents:
            more = set(cc.loc[_isin(cc, "contact_identity", idents), "company_identity"]) - seen_co
            rows = prev_co[_isin(prev_co, "identity_id", more)]
            for c in assoc.CRMS:
                grow.append(pd.DataFrame({"crm": c, "id": rows[f"{c}_id"].dropna().to_numpy(dtype=object)}))
        frontier = pd.concat(grow, ignore_index=True).astype(object).dropna().drop_duplicates(ignore_index=True) \
            if grow else nodes.iloc[:0]
    node_sets = _by_crm(nodes)
    in_nodes = np.zeros(len(prev_co), dtype=bool)
    for crm, ids in node_sets.items():
        in_nodes |= _isin(prev_co, f"{crm}_id", ids)
    dead_co = set(prev_co.loc[in_nodes, "identity_id"])
    node_pairs = cpairs.where("company_id", nodes)
    node_members = contact_ov.of(node_pairs, "contact_id", all_roles=True)
    sub_ident = node_members[node_members["role"].isin(_ROLES)]
    sub_pairs = node_pairs.merge(sub_ident[["crm", "id", "identity_id"]].rename(columns={"id": "contact_id"}),
                                 on=["crm", "contact_id"], how="inner")
    lmask = np.zeros(len(link), dtype=bool)
    for crm, ids in node_sets.items():
        lmask |= link[f"{crm}_id"].isin(_ix(ids)).to_numpy()
    sub = match_companies(domains.where("id", nodes), sub_pairs[["crm", "company_id", "identity_id"]], link[lmask])
    if len(nodes):
        changes["company_identities"] = TableChange(("identity_id",), pd.DataFrame({"identity_id": sorted(dead_co)}),
                                                    sub.identities)
        accounts = nodes[nodes["crm"] != "hubspot"]
        changes["company_findings"] = TableChange(("crm", "id"), accounts, sub.findings)
    company_ov = _Overlay(prev_co, dead_co, assoc.companies_as_members(sub.identities), wide=True)

    # COM-2 for the HubSpot companies among them (their contacts' identities all lie inside the closure)
    hs_nodes = nodes[nodes["crm"] == "hubspot"]
    if len(hs_nodes):
        hs_pairs = node_pairs[node_pairs["crm"] == "hubspot"]
        mem = node_members[node_members["crm"] == "hubspot"]
        ident_ids = _ix(mem["identity_id"].unique())
        prev_ids = prev.contacts.identities
        idt = prev_ids[_isin(prev_ids, "identity_id", ident_ids.difference(contact_ov.dead))]
        if part is not None:
            idt = pd.concat([idt, part.identities[part.identities["identity_id"].isin(ident_ids)]], ignore_index=True)
        cand = account_creation_candidates(
            sub.identities[sub.identities["hubspot_id"].notna()], hs_pairs[["crm", "company_id", "contact_id"]], idt,
            mem, settings.new_contact_type, settings.valid_email_only, settings.inclusion_list,
            settings.requested_accounts)
        changes["account_candidates"] = TableChange(("hubspot_id",), pd.DataFrame({"hubspot_id": hs_nodes["id"]}),
                                                    cand)

    # DEAL-6 associations between identities
    deal_change = changes.get("deal_identities")
    dead_deals = set(deal_change.removed["identity_id"]) | set(deal_change.added.get("identity_id", [])) \
        if deal_change is not None else set()
    deal_new = assoc.deals_as_members(deal_change.added.reindex(columns=["identity_id", *[f"{c}_id" for c in
                                                                                         assoc.CRMS]])) \
        if deal_change is not None and len(deal_change.added) else company_ov.new.iloc[:0]
    deal_ov = _Overlay(prev.deals, dead_deals, deal_new, wide=True)
    contact_touched = set(moved.identities) if moved is not None else set(gone_contacts)
    company_touched = dead_co | set(sub.identities["identity_id"])
    changes["contact_company"] = _assoc_change(prev.contact_company, cpairs, "contact", "company", "contact_id",
                                               "company_id", contact_ov, company_ov, contact_touched, company_touched)
    changes["deal_contact"] = _assoc_change(prev.deal_contact, dcpairs, "deal", "contact", "deal_id", "contact_id",
                                            deal_ov, contact_ov, dead_deals, contact_touched)
    changes["deal_company"] = _assoc_change(prev.deal_company, dcopairs, "deal", "company", "deal_id", "company_id",
                                            deal_ov, company_ov, dead_deals, company_touched)

    _lifecycle_changes(prev, delta, settings, changes, contact_ov, k_records, cpairs, part)


def _lifecycle_changes(prev: TransformResult, delta: Mirrors, settings: TransformSettings,
                       changes: dict[str, TableChange], contact_ov: _Overlay, k_records: pd.DataFrame,
                       cpairs: _Pairs, part: ContactIdentities | None) -> None:
    """CON-9/DEAL-7 for the HubSpot contacts whose stage, Dynamics record or closed-won deals may have changed,
    then COM-4 for their companies and the changed companies."""
    hs_delta = delta.frames.get(("hubspot", "contacts"))
    ids: set = set(k_records.loc[k_records["crm"] == "hubspot", "id"])
    if hs_delta is not None:
        ids |= set(text(hs_delta["id"]).dropna())
    if "contact_rollups" in changes:
        ids |= set(changes["contact_rollups"].removed["contact_id"].dropna())
    if "contact_identities" in changes:
        prev_ids = prev.contacts.identities
        gone = prev_ids[_isin(prev_ids, "identity_id", changes["contact_identities"].removed["identity_id"])]
        ids |= set(gone["hubspot_id"].dropna()) | set(changes["contact_identities"].added["hubspot_id"].dropna())
    h = _ix(ids)
    if len(h):
        lc = prev.lifecycle
        cur = lc.loc[_isin(lc, "id", h), ["id", "lifecyclestage"]]
        if hs_delta is not None:
            live = delta.live("hubspot", "contacts", ["lifecyclestage"])
            cur = pd.concat([cur[~cur["id"].isin(_ix(text(hs_delta["id"])))],
                             pd.DataFrame({"id": text(live["id"]).to_numpy(), "lifecyclestage": live["lifecyclestage"]
                                           .to_numpy(dtype=object)})], ignore_index=True)
        cur = cur.reset_index(drop=True)
        idt = prev.contacts.identities
        idt = idt[_isin(idt, "hubspot_id", h)]
        idt = idt.loc[~idt["identity_id"].isin(contact_ov.dead), ["hubspot_id", "dynamics_id"]]
        if part is not None:
            idt = pd.concat([idt, part.identities[["hubspot_id", "dynamics_id"]]], ignore_index=True)
        with_dyn = idt.dropna(subset=["hubspot_id", "dynamics_id"])["hubspot_id"]
        hp = prev.hubspot_deal_contacts
        hp = hp[_isin(hp, "contact_id", h)]
        if "hubspot_deal_contacts" in changes:
            c = changes["hubspot_deal_contacts"]
            hp = c.apply(hp)
            hp = hp[hp["contact_id"].isin(h)]
        facts = prev.deal_facts
        facts = facts[_isin(facts, "deal_id", hp["deal_id"].unique())]
        if "deal_facts" in changes:
            facts = changes["deal_facts"].apply(facts)
            facts = facts[facts["deal_id"].isin(_ix(hp["deal_id"].unique()))]
        won = hp.loc[hp["deal_id"].isin(facts.loc[facts["is_won"], "deal_id"]), "contact_id"]
        new_lc = contact_lifecycle(cur, cur["id"].isin(with_dyn), settings.dynamics_lifecycle_stage, won,
                                   settings.closed_won_sets_customer)
        changes["lifecycle"] = TableChange(("id",), pd.DataFrame({"id": h}), new_lc)
    else:
        new_lc = prev.lifecycle.iloc[:0]

    # COM-4: companies of those contacts (before and after), changed companies, changed HubSpot pairs
    co_delta = delta.frames.get(("hubspot", "companies"))
    hs_h = pd.DataFrame({"crm": "hubspot", "id": h})
    co: set = set()
    if len(h):  # pairs removed by the change are among ``cpairs.differing()`` below
        co |= set(cpairs.where("contact_id", hs_h)["company_id"])
    ch = cpairs.differing()
    co |= set(ch.loc[ch["crm"] == "hubspot", "company_id"])
    if co_delta is not None:
        co |= set(text(co_delta["id"]).dropna())
    if not co:
        return
    ac = pd.DataFrame({"crm": "hubspot", "id": _ix(co)})
    pairs = cpairs.where("company_id", ac)
    pairs = pairs.loc[pairs["crm"] == "hubspot", ["company_id", "contact_id"]]
    lc = prev.lifecycle
    stages = lc.loc[_isin(lc, "id", pairs["contact_id"].unique()), ["id", "new_stage"]]
    stages = stages[~stages["id"].isin(h)]
    stages = pd.concat([stages, new_lc[["id", "new_stage"]]], ignore_index=True)
    pc = prev.company_lifecycle
    companies = pc.loc[_isin(pc, "id", ac["id"]), ["id", "lifecyclestage"]]
    if co_delta is not None:
        live = delta.live("hubspot", "companies", ["lifecyclestage"])
        companies = pd.concat([companies[~companies["id"].isin(_ix(text(co_delta["id"])))], pd.DataFrame(
            {"id": text(live["id"]).to_numpy(), "lifecyclestage": live["lifecyclestage"].to_numpy(dtype=object)})],
            ignore_index=True)
    changes["company_lifecycle"] = TableChange(("id",), ac[["id"]], company_lifecycle(
        pairs, stages, companies.reset_index(drop=True)))

"""Contact identities: one identity per email across HubSpot, Salesforce and Dynamics (CON-2, CON-3, CON-4, CON-11).

An identity holds at most one record per CRM. It is anchored either by an existing link (the link
table) or by a normalized email. Rules, in order:

1. Links are kept: a linked record stays in its identity even if its email changed or a duplicate
   appeared (a link once made is not re-pointed). The one exception is CON-4's: a linked Salesforce Lead
   that was converted follows its ``ConvertedContactId``.
2. A converted Lead whose Contact exists is represented by that Contact; it is never a candidate itself.
3. Other records join the identity owning their email (a linked identity that has the email on one of
   its records, else the identity named after the email) if that identity has no record of their CRM yet.
   Several candidates for one slot: one deterministic winner (CON-11: Salesforce Contact over Lead, then
   most recently modified, then lowest id; Dynamics likewise with the preferred entity first) and every
   other candidate is an ambiguity finding, never linked.
4. Records without a usable email (none, or invalid while ``valid_email_only``) that are not linked stay
   single-record identities: they are linked only through the link table, never by guessing (CON-3).

Everything is vectorised; the work is a handful of merges, sorts and ``drop_duplicates`` over all records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines.transform.emails import normalize_emails, valid_emails
from crm_pipelines.transform.frames import Mirrors, flag, links_of, object_frame

CRMS = ("hubspot", "salesforce", "dynamics")
DYNAMICS_ENTITIES = {"contact": "contacts", "lead": "leads"}

RECORD_COLUMNS = ("crm", "type", "id", "email_raw", "modified_at", "converted_contact_id", "type_rank")
IDENTITY_COLUMNS = (
    "identity_id", "email", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type", "linked",
)
MEMBER_COLUMNS = ("crm", "type", "id", "email", "email_valid", "identity_id", "role", "email_raw", "modified_at",
                  "converted_contact_id", "type_rank")
FINDING_COLUMNS = ("crm", "type", "id", "email", "identity_id", "winner_id", "reason")


@dataclass(frozen=True)
class ContactIdentities:
    """identities: one row per identity; members: one row per live record with its identity and role
    (``linked``, ``matched``, ``converted``, ``ambiguous``, ``unmatched``) plus the record's own columns
    (``RECORD_COLUMNS``); findings: the ambiguity findings."""

    identities: pd.DataFrame
    members: pd.DataFrame
    findings: pd.DataFrame


def contact_records(mirrors: Mirrors, dynamics_entities: tuple[str, ...] = ("contact", "lead")) -> pd.DataFrame:
    """Every live contact-like record of the three CRMs in one long frame (``RECORD_COLUMNS``).

    ``dynamics_entities`` lists the Dynamics entities that carry contacts, preferred first (TOP-1: one is
    chosen per connection; pass ``("contact",)`` or ``("lead",)`` to follow that setting strictly).
    """
    parts = []

    def part(crm: str, type_: str, frame: pd.DataFrame, email: str, rank: int, converted: pd.Series | None = None):
        parts.append(pd.DataFrame({
            "crm": crm,
            "type": type_,
            "id": frame["id"].to_numpy(dtype=object),
            "email_raw": frame[email].to_numpy(dtype=object),
            "modified_at": pd.to_datetime(frame["modified_at"], utc=True).array,
            "converted_contact_id": (converted.to_numpy(dtype=object) if converted is not None
                                     else np.full(len(frame), None, dtype=object)),
            "type_rank": rank,
        }))

    part("hubspot", "contact", mirrors.live("hubspot", "contacts", ["email"]), "email", 0)
    part("salesforce", "Contact", mirrors.live("salesforce", "Contact", ["Email"]), "Email", 0)
    leads = mirrors.live("salesforce", "Lead", ["Email", "IsConverted", "ConvertedContactId"])
    converted = leads["ConvertedContactId"].astype("string").where(flag(leads["IsConverted"]))
    part("salesforce", "Lead", leads, "Email", 1, converted)
    for rank, entity in enumerate(dynamics_entities):
        part("dynamics", entity, mirrors.live("dynamics", DYNAMICS_ENTITIES[entity], ["emailaddress1"]),
             "emailaddress1", rank)
    out = pd.concat(parts, ignore_index=True)
    for c in ("crm", "type", "id", "email_raw", "converted_contact_id"):  # plain objects, None for missing
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    out["modified_at"] = pd.to_datetime(out["modified_at"], utc=True)
    out["type_rank"] = out["type_rank"].astype(np.int8)
    return out


def contact_identities(
    records: pd.DataFrame,
    links: pd.DataFrame | None = None,
    valid_email_only: bool = True,
    known_valid: pd.Series | None = None,
) -> ContactIdentities:
    """Identities, memberships and ambiguity findings for ``records`` (from ``contact_records``).

    ``links`` is the link frame (only ``kind == "contact"`` rows are used); ``known_valid`` (email -> bool)
    reuses earlier validity verdicts.

    A million records make string hashing the cost that matters, so identities are integer codes
    (link ``j``; email ``L + k``; single record ``L + K + row``) and strings are built once at the end. Only
    slots with several candidates - a small share - are sorted, with their ids as the last tie-breaker.
    """
    recs = records.reset_index(drop=True)
    n = len(recs)
    email = normalize_emails(recs["email_raw"])
    kcode, kuniq = pd.factorize(email)
    kuniq = np.asarray(kuniq, dtype=object)
    n_keys = len(kuniq)
    uniq_valid = valid_emails(pd.Series(kuniq, dtype=object), known_valid).to_numpy(dtype=bool)
    valid = (kcode >= 0) & uniq_valid[np.maximum(kcode, 0)] if n_keys else np.zeros(n, dtype=bool)
    if valid_email_only:
        kcode = np.where(valid, kcode, -1)
    crm_code = pd.Categorical(recs["crm"], categories=list(CRMS)).codes.astype(np.int64)
    ids = recs["id"].to_numpy(dtype=object)
    types = recs["type"].to_numpy(dtype=object)
    conv_vals = recs["converted_contact_id"].to_numpy(dtype=object)
    conv_rows = np.flatnonzero(pd.notna(conv_vals))
    contact_rows = np.flatnonzero((crm_code == 1) & (types == "Contact"))
    conv_target = np.full(len(conv_rows), -1, dtype=np.int64)  # row of the Contact a Lead was converted to
    if len(conv_rows) and len(contact_rows):
        pos = pd.Index(ids[contact_rows]).get_indexer(conv_vals[conv_rows])
        conv_target = np.where(pos >= 0, contact_rows[np.maximum(pos, 0)], -1)
    link = _link_slots(links_of(links, "contact"))
    n_links = len(link)
    icode = np.full(n, -1, dtype=np.int64)
    role = np.full(n, None, dtype=object)

    # 1. linked records keep their identity; a linked converted Lead hands it to its Contact (CON-4)
    moved = np.zeros(n_links, dtype=bool)
    if n_links:
        for ci, crm in enumerate(CRMS):
            sel = np.flatnonzero(crm_code == ci)
            pos = pd.Index(ids[sel]).get_indexer(link[f"{crm}_id"].to_numpy(dtype=object))
            ok = pos >= 0
            icode[sel[pos[ok]]] = np.flatnonzero(ok)
        lead = (icode[conv_rows] >= 0) & (conv_target >= 0) & (types[conv_rows] == "Lead")
        src, dst = conv_rows[lead], conv_target[lead]
        keep = (icode[dst] < 0) & ~pd.Series(dst).duplicated().to_numpy()
        src, dst = src[keep], dst[keep]
        icode[dst] = icode[src]
        moved[icode[src]] = True
        link.loc[icode[src], "salesforce_id"] = ids[dst]
        link.loc[icode[src], "salesforce_type"] = "Contact"
    is_linked = icode >= 0
    role[is_linked] = "linked"
    lead_rows = conv_rows[is_linked[conv_rows] & (types[conv_rows] == "Lead")]
    role[lead_rows[moved[icode[lead_rows]]]] = "converted"

    # 2. converted Leads whose Contact is live are represented by it (CON-4)
    free_conv = (conv_target >= 0) & ~is_linked[conv_rows]
    absorbed_rows, absorbed_to = conv_rows[free_conv], conv_target[free_conv]
    absorbed = np.zeros(n, dtype=bool)
    absorbed[absorbed_rows] = True
    role[absorbed] = "converted"
    # CON-4: the Contact a Lead became matches as the Lead did when it has no usable email of its own (the
    # HubSpot contact that matched the Lead is the Contact's, as HubSpot follows the conversion); several
    # Leads into one Contact: the lowest Lead id's email
    heir = absorbed_rows[(kcode[absorbed_rows] >= 0) & (kcode[absorbed_to] < 0)]
    if len(heir):
        pick = pd.DataFrame({"lead": heir, "to": conv_target[free_conv][(kcode[absorbed_rows] >= 0)
                                                                       & (kcode[absorbed_to] < 0)],
                             "id": ids[heir]}).sort_values(["to", "id"]).drop_duplicates("to")
        kcode[pick["to"].to_numpy()] = kcode[pick["lead"].to_numpy()]

    # 3. candidates for an identity's slot in their CRM (CON-2, CON-11)
    cand = np.flatnonzero(~is_linked & ~absorbed & (kcode >= 0))
    owner = np.full(n_keys, -1, dtype=np.int64)  # the linked identity that has the email on one of its records
    if n_links:
        lk = np.flatnonzero(is_linked & (kcode >= 0))
        best = pd.Series(icode[lk]).groupby(kcode[lk]).min()
        owner[best.index.to_numpy()] = best.to_numpy()
    c_owner = owner[kcode[cand]]
    has_owner = c_owner >= 0
    c_crm = crm_code[cand]
    slot = np.where(has_owner, c_owner, n_links + kcode[cand]) * 3 + c_crm
    taken = np.zeros(len(cand), dtype=bool)
    if n_links and has_owner.any():
        filled = np.stack([link[f"{c}_id"].notna().to_numpy() for c in CRMS], axis=1)
        taken[has_owner] = filled[c_owner[has_owner], c_crm[has_owner]]
    crowded = pd.Series(slot).duplicated(keep=False).to_numpy()
    win = ~crowded & ~taken
    winner_row = np.full(len(cand), -1, dtype=np.int64)  # for losers: the candidate that won their slot
    if crowded.any():
        at = np.flatnonzero(crowded)
        sub = pd.DataFrame({"slot": slot[at], "rank": recs["type_rank"].to_numpy()[cand[at]],
                            "mod": -_epoch(recs["modified_at"])[cand[at]], "id": ids[cand[at]], "at": at})
        sub = sub.sort_values(["slot", "rank", "mod", "id"], kind="mergesort")
        s_slot, s_at = sub["slot"].to_numpy(), sub["at"].to_numpy()
        head = np.r_[True, s_slot[1:] != s_slot[:-1]]
        first = np.maximum.accumulate(np.where(head, np.arange(len(sub)), 0))
        win[s_at[head & ~taken[s_at]]] = True
        winner_row[s_at] = cand[s_at[first]]
    icode[cand] = np.where(has_owner, c_owner, n_links + kcode[cand])
    winners, losers = cand[win], cand[~win]
    role[winners] = "matched"
    role[losers] = "ambiguous"

    # 4. single-record identities (no usable email, no link), then converted Leads take their Contact's
    single = np.flatnonzero(~is_linked & ~absorbed & (kcode < 0))
    icode[single] = n_links + n_keys + single
    role[single] = "unmatched"
    icode[absorbed_rows] = icode[absorbed_to]

    # 5. identity strings, built once for the codes in use
    mark = np.zeros(n_links + n_keys + n + 1, dtype=bool)
    mark[:n_links] = True
    mark[icode[icode >= 0]] = True
    used = np.flatnonzero(mark)
    where = np.searchsorted(used, icode)
    name = np.empty(len(used), dtype=object)
    is_link, is_key = used < n_links, (used >= n_links) & (used < n_links + n_keys)
    name[is_link] = link["identity_id"].to_numpy(dtype=object)[used[is_link]]
    name[is_key] = "email:" + kuniq[used[is_key] - n_links]
    rows = used[~is_link & ~is_key] - n_links - n_keys
    name[~is_link & ~is_key] = recs["crm"].to_numpy(dtype=object)[rows] + ":" + ids[rows]
    identity = name[where]

    out = {"identity_id": name}
    rep = np.flatnonzero((role == "linked") | (role == "matched") | (role == "unmatched"))
    email_of = np.full(len(used), None, dtype=object)
    for ci in (2, 1, 0):  # HubSpot's email wins, then Salesforce's, then Dynamics'
        r = rep[(crm_code[rep] == ci) & (kcode[rep] >= 0)]
        email_of[where[r]] = kuniq[kcode[r]]
    for ci, crm in enumerate(CRMS):
        r = rep[crm_code[rep] == ci]
        col = np.full(len(used), None, dtype=object)
        col[where[r]] = ids[r]
        out[f"{crm}_id"] = col
        if crm != "hubspot":
            tcol = np.full(len(used), None, dtype=object)
            tcol[where[r]] = types[r]
            out[f"{crm}_type"] = tcol
    for col in ("hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type"):
        # the link table's ids stand even when the record is not live (deletions are DEL-*'s to plan)
        v = link[col].to_numpy(dtype=object)
        has = pd.notna(v)
        out[col][np.flatnonzero(has)] = v[has]
    out["email"] = email_of
    out["linked"] = is_link
    identities = object_frame(out)

    c_pos = np.searchsorted(cand, losers)
    lw = winner_row[c_pos]
    l_taken = taken[c_pos]
    winner_id = np.where(lw >= 0, ids[np.maximum(lw, 0)] if n else None, None)
    if l_taken.any():
        lo = c_owner[c_pos][l_taken]
        lc = crm_code[losers][l_taken]
        winner_id[l_taken] = np.stack([link[f"{c}_id"].to_numpy(dtype=object) for c in CRMS], axis=1)[lo, lc]
    same = types[losers] == np.where(lw >= 0, types[np.maximum(lw, 0)] if n else None, None)
    reason = np.where(l_taken, "linked_record_exists", np.where(
        same, "duplicate_email",
        "same_email_" + pd.Series(types[losers], dtype=object).str.lower().to_numpy(dtype=object) + "_not_chosen"))
    findings = object_frame({
        "crm": recs["crm"].to_numpy(dtype=object)[losers], "type": types[losers], "id": ids[losers],
        "email": kuniq[kcode[losers]] if n_keys else np.array([], dtype=object), "identity_id": identity[losers],
        "winner_id": winner_id, "reason": reason,
    })
    members = object_frame({
        "crm": recs["crm"].to_numpy(dtype=object), "type": types, "id": ids, "email": email.to_numpy(dtype=object),
        "email_valid": valid, "identity_id": identity, "role": role,
        # the record's own columns ride along, so an incremental run can rebuild a component from members alone
        "email_raw": recs["email_raw"].to_numpy(dtype=object), "modified_at": recs["modified_at"].array,
        "converted_contact_id": conv_vals, "type_rank": recs["type_rank"].to_numpy(),
    })
    return ContactIdentities(_typed(identities, IDENTITY_COLUMNS), members, _typed(findings, FINDING_COLUMNS))


def _epoch(stamps: pd.Series) -> np.ndarray:
    """Datetimes as integers in their own unit (for ordering only); NaT sorts as oldest."""
    naive = pd.to_datetime(stamps, utc=True).dt.tz_convert(None).to_numpy()
    out = naive.view(np.int64).copy()
    out[np.isnat(naive)] = np.iinfo(np.int64).min + 1
    return out


def _link_slots(link: pd.DataFrame) -> pd.DataFrame:
    out = link.dropna(subset=["hubspot_id"]).drop_duplicates("hubspot_id").copy()
    out["identity_id"] = ("link:" + out["hubspot_id"]).astype("string")
    # ordered by identity id: "the lowest linked identity owns an email" must not depend on the table's order
    out = out.sort_values("identity_id")
    return out[["identity_id", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id",
                "dynamics_type"]].reset_index(drop=True)


def _typed(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns in contract order; text stays in object columns (None for missing): converting a million
    values to the string dtype re-validates each one for nothing."""
    out = frame.reindex(columns=list(columns)).reset_index(drop=True)
    for c in columns:
        if c in ("linked", "email_valid"):
            out[c] = out[c].astype(bool)
    return out

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
from crm_pipelines.transform.frames import Mirrors, flag, links_of

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
            "id": frame["id"].astype("string").to_numpy(),
            "email_raw": frame[email].astype("string").to_numpy(),
            "modified_at": pd.to_datetime(frame["modified_at"], utc=True).array,
            "converted_contact_id": (converted if converted is not None else pd.Series(pd.NA, index=frame.index,
                                                                                      dtype="string")).to_numpy(),
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
    for c in ("crm", "type", "id", "email_raw", "converted_contact_id"):
        out[c] = out[c].astype("string")
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

    Work is on integer codes and row positions: string keys are hashed once (``factorize``), and only the
    slots with several candidates - a small share - are sorted with their ids.
    """
    recs = records.reset_index(drop=True)
    n = len(recs)
    email = normalize_emails(recs["email_raw"])
    # one hash pass over the emails: validity is judged per distinct email, keys are the valid codes
    kcode, kuniq = pd.factorize(email)
    kuniq = np.asarray(kuniq, dtype=object)
    uniq_valid = valid_emails(pd.Series(kuniq, dtype=object), known_valid).to_numpy(dtype=bool)
    valid = pd.Series(np.where(kcode >= 0, uniq_valid[np.maximum(kcode, 0)] if len(kuniq) else False, False))
    if valid_email_only:
        kcode = np.where(valid.to_numpy(), kcode, -1)
    crm_code = pd.Categorical(recs["crm"], categories=list(CRMS)).codes.astype(np.int64)
    ids = recs["id"].to_numpy(dtype=object)
    types = recs["type"].to_numpy(dtype=object)
    conv_to = recs["converted_contact_id"]
    sf_contact = (crm_code == 1) & (types == "Contact")
    link = _link_slots(links_of(links, "contact"))
    identity = np.full(n, None, dtype=object)
    role = np.full(n, None, dtype=object)

    # 1. linked records keep their identity
    if len(link):
        for ci, crm in enumerate(CRMS):
            sel = np.flatnonzero(crm_code == ci)
            pos = pd.Index(ids[sel]).get_indexer(link[f"{crm}_id"].to_numpy(dtype=object))
            ok = pos >= 0
            identity[sel[pos[ok]]] = link["identity_id"].to_numpy(dtype=object)[ok]
        link = _follow_conversions(link, identity, ids, conv_to, sf_contact, crm_code, types)
    is_linked = pd.notna(identity)
    role[is_linked] = "linked"
    moved = set(link.loc[link["salesforce_type"] == "Contact", "identity_id"]) if len(link) else set()
    was_lead = is_linked & (types == "Lead") & conv_to.notna().to_numpy() & pd.Series(identity).isin(moved).to_numpy()
    role[was_lead] = "converted"

    # 2. converted Leads whose Contact is live are represented by it (CON-4)
    absorbed = ~is_linked & conv_to.isin(ids[sf_contact]).to_numpy()
    role[absorbed] = "converted"

    # 3. candidates for an identity's slot in their CRM
    cand = np.flatnonzero(~is_linked & ~absorbed & (kcode >= 0))
    owner = np.full(len(kuniq), None, dtype=object)
    if is_linked.any():
        lk = pd.DataFrame({"k": kcode[is_linked], "i": identity[is_linked]})
        lk = lk[lk["k"] >= 0].sort_values(["k", "i"]).drop_duplicates("k")
        owner[lk["k"].to_numpy()] = lk["i"].to_numpy()
    c_owner = owner[kcode[cand]]
    has_owner = pd.notna(c_owner)
    o_code, o_uniq = pd.factorize(pd.Series(c_owner[has_owner], dtype=object))
    grp = kcode[cand].astype(np.int64)
    grp[has_owner] = len(kuniq) + o_code
    slot_taken = np.zeros(len(cand), dtype=bool)
    if has_owner.any():
        filled = link.set_index("identity_id").reindex(np.asarray(o_uniq, dtype=object))
        fm = np.stack([filled[f"{c}_id"].notna().to_numpy() for c in CRMS], axis=1)
        slot_taken[has_owner] = fm[o_code, crm_code[cand][has_owner]]
    slot = grp * 3 + crm_code[cand]
    crowded = pd.Series(slot).duplicated(keep=False).to_numpy()
    win = ~crowded & ~slot_taken
    if crowded.any():
        sub = pd.DataFrame({
            "slot": slot[crowded], "rank": recs["type_rank"].to_numpy()[cand[crowded]],
            "mod": -_epoch(recs["modified_at"])[cand[crowded]],
            "id": ids[cand[crowded]], "pos": np.flatnonzero(crowded),
        }).sort_values(["slot", "rank", "mod", "id"], kind="mergesort")
        first = ~sub["slot"].duplicated().to_numpy()
        win[sub["pos"].to_numpy()[first]] = True
        win &= ~slot_taken
    target = np.where(has_owner, c_owner, None)
    no_owner = ~has_owner
    target[no_owner] = "email:" + kuniq[kcode[cand][no_owner]]
    winners = cand[win]
    losers = cand[~win]
    identity[cand] = target
    role[winners] = "matched"
    role[losers] = "ambiguous"

    # findings name the record holding the slot (a linked record or the winning candidate)
    holder = pd.concat([
        pd.DataFrame({"t": identity[is_linked], "c": crm_code[is_linked], "winner_id": ids[is_linked],
                      "winner_type": types[is_linked], "taken": True}),
        pd.DataFrame({"t": identity[winners], "c": crm_code[winners], "winner_id": ids[winners],
                      "winner_type": types[winners], "taken": False}),
    ], ignore_index=True)
    holder = holder[holder["c"] >= 0]
    if len(link):  # a linked record that is no longer live still holds its slot
        for ci, crm in enumerate(CRMS):
            lr = link.dropna(subset=[f"{crm}_id"])
            holder = pd.concat([holder, pd.DataFrame({"t": lr["identity_id"].to_numpy(dtype=object), "c": ci,
                                                      "winner_id": lr[f"{crm}_id"].to_numpy(dtype=object),
                                                      "winner_type": None, "taken": True})], ignore_index=True)
    lose = pd.DataFrame({"t": identity[losers], "c": crm_code[losers]}).merge(
        holder.drop_duplicates(["t", "c"]), on=["t", "c"], how="left")
    taken = lose["taken"].fillna(False).to_numpy(dtype=bool)
    same = (types[losers] == lose["winner_type"].to_numpy(dtype=object))
    reason = np.where(taken, "linked_record_exists", np.where(
        same, "duplicate_email", "same_email_" + pd.Series(types[losers], dtype=object).str.lower().to_numpy(
            dtype=object) + "_not_chosen"))
    findings = pd.DataFrame({
        "crm": recs["crm"].to_numpy()[losers], "type": types[losers], "id": ids[losers],
        "email": kuniq[kcode[losers]] if len(losers) else [], "identity_id": identity[losers],
        "winner_id": lose["winner_id"].to_numpy(), "reason": reason,
    })

    # 4. single-record identities: no usable email and no link
    single = ~is_linked & ~absorbed & (kcode < 0)
    identity[single] = recs["crm"].to_numpy(dtype=object)[single] + ":" + ids[single]
    role[single] = "unmatched"
    # converted Leads share their Contact's identity
    contact_identity = pd.Series(identity[sf_contact], index=ids[sf_contact])
    contact_identity = contact_identity[~contact_identity.index.duplicated()]
    identity[absorbed] = conv_to[absorbed].map(contact_identity).to_numpy(dtype=object)

    # 5. identity rows: one per identity; a slot is the linked record, else the winner
    rep = np.flatnonzero((role == "linked") | (role == "matched") | single)
    rep = rep[pd.notna(identity[rep])]
    slots = pd.DataFrame({"identity_id": identity[rep], "c": crm_code[rep], "id": ids[rep], "type": types[rep],
                          "key": kuniq[kcode[rep]] if len(kuniq) else None, "has_key": kcode[rep] >= 0})
    slots.loc[~slots["has_key"].to_numpy(), "key"] = None
    uniq = pd.Index(pd.unique(np.concatenate([link["identity_id"].to_numpy(dtype=object),
                                              slots["identity_id"].to_numpy(dtype=object)])))
    out = pd.DataFrame({"identity_id": uniq.to_numpy(dtype=object)})
    for ci, crm in enumerate(CRMS):
        s = slots[slots["c"] == ci].drop_duplicates("identity_id")
        pos = uniq.get_indexer(s["identity_id"].to_numpy(dtype=object))
        col = np.full(len(uniq), None, dtype=object)
        col[pos] = s["id"].to_numpy(dtype=object)
        out[f"{crm}_id"] = col
        if crm != "hubspot":
            tcol = np.full(len(uniq), None, dtype=object)
            tcol[pos] = s["type"].to_numpy(dtype=object)
            out[f"{crm}_type"] = tcol
    if len(link):  # the link table's ids win over what is live (a deleted record keeps its slot until DEL-*)
        lk = link.set_index("identity_id")
        pos = uniq.get_indexer(lk.index.to_numpy(dtype=object))
        for col in ("hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type"):
            v = lk[col].to_numpy(dtype=object)
            has = pd.notna(v)
            arr = out[col].to_numpy(dtype=object).copy()
            arr[pos[has]] = v[has]
            out[col] = arr
    out["linked"] = out["identity_id"].isin(link["identity_id"]).to_numpy()
    # the identity's email: its HubSpot record's, else Salesforce's, else Dynamics'
    em = slots[slots["has_key"]].sort_values("c", kind="stable").drop_duplicates("identity_id")
    out["email"] = out["identity_id"].map(pd.Series(em["key"].to_numpy(), index=em["identity_id"].to_numpy()))
    members = pd.DataFrame({
        "crm": recs["crm"].to_numpy(), "type": types, "id": ids, "email": email.to_numpy(),
        "email_valid": valid.to_numpy(),
        "identity_id": identity, "role": role,
        # the record's own columns ride along, so an incremental run can rebuild a component from members alone
        "email_raw": recs["email_raw"].to_numpy(), "modified_at": recs["modified_at"].array,
        "converted_contact_id": recs["converted_contact_id"].to_numpy(), "type_rank": recs["type_rank"].to_numpy(),
    })
    # members stay plain object columns: a million rows are not worth re-validating as strings
    return ContactIdentities(_typed(out, IDENTITY_COLUMNS), members, _typed(findings, FINDING_COLUMNS))


def _follow_conversions(link: pd.DataFrame, identity: np.ndarray, ids: np.ndarray, conv_to: pd.Series,
                        sf_contact: np.ndarray, crm_code: np.ndarray, types: np.ndarray) -> pd.DataFrame:
    """CON-4: a linked converted Lead's identity moves to its Contact, unless that Contact is linked elsewhere."""
    leads = np.flatnonzero(pd.notna(identity) & (crm_code == 1) & (types == "Lead") & conv_to.notna().to_numpy())
    if not len(leads):
        return link
    contacts = pd.Index(ids[sf_contact])
    pos = contacts.get_indexer(conv_to.to_numpy(dtype=object)[leads])
    ok = pos >= 0
    contact_rows = np.flatnonzero(sf_contact)[pos[ok]]
    free = pd.isna(identity[contact_rows])
    lead_rows, contact_rows = leads[ok][free], contact_rows[free]
    first = ~pd.Series(contact_rows).duplicated().to_numpy()
    lead_rows, contact_rows = lead_rows[first], contact_rows[first]
    identity[contact_rows] = identity[lead_rows]
    move = pd.Series(ids[contact_rows], index=identity[lead_rows])
    link = link.copy()
    hit = link["identity_id"].isin(move.index)
    link.loc[hit, "salesforce_id"] = link.loc[hit, "identity_id"].map(move)
    link.loc[hit, "salesforce_type"] = "Contact"
    return link


def _epoch(stamps: pd.Series) -> np.ndarray:
    """Datetimes as integers in their own unit (for ordering only); NaT sorts as oldest."""
    naive = pd.to_datetime(stamps, utc=True).dt.tz_convert(None).to_numpy()
    out = naive.view(np.int64).copy()
    out[np.isnat(naive)] = np.iinfo(np.int64).min + 1
    return out


def _link_slots(link: pd.DataFrame) -> pd.DataFrame:
    out = link.dropna(subset=["hubspot_id"]).drop_duplicates("hubspot_id").copy()
    out["identity_id"] = ("link:" + out["hubspot_id"]).astype("string")
    return out[["identity_id", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id",
                "dynamics_type"]].reset_index(drop=True)


def _typed(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.reindex(columns=list(columns)).reset_index(drop=True)
    for c in columns:
        out[c] = out[c].astype(bool) if c in ("linked", "email_valid") else out[c].astype("string")
    return out

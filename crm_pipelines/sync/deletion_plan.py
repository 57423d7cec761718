"""Deletions a plan carries to the other app, and the ones it does not, with the rule (DEL-1..3).

A deletion is a record deleted in its CRM (the mirror's ``deleted`` flag) whose counterpart, linked to it,
is still live. Contacts and companies lose their link when a side is deleted, so their deletions come from
the link history (``state/links.py: deletions``); deals are linked only by the sync's own writes and keep
their link, so theirs come from the deal links and the mirrors' flags (``deal_events``).

- DEL-1: Dynamics, and deals outside Salesforce: a deletion in one app never deletes in the other.
- DEL-2: Salesforce contacts, two switches, off by default: a HubSpot contact is deleted when its linked
  Lead (``delete_contact_when_lead_deleted``) or Contact (``delete_contact_when_contact_deleted``) is deleted.
  Not when the HubSpot contact is linked to another live Salesforce record by now (it still syncs there).
  A HubSpot contact deleted never deletes its Salesforce record.
- DEL-3: deleting a Salesforce Opportunity deletes its linked HubSpot deal; deleting a HubSpot deal does not
  delete the Opportunity.
- Companies [product]: the help articles name no deletion of companies or Accounts (seed 002 is silent, seeds
  000/001 keep contacts and deals), so a company deleted in one app is never deleted in the other; a
  deletion cannot be undone by the sync, a record kept can still be deleted by hand.
- CON-1: a deletion travels only in a direction the connection syncs the object in.
- A record deleted by a merge (Salesforce ``MasterRecordId``) is not a deletion: the link follows the
  survivor. A record restored since (live again in its mirror) is no deletion either.

Every deletion not carried is listed with its reason (``LEFT_OUT_COLUMNS``: ``source_*`` is the deleted
record, ``target_crm`` the app that keeps its counterpart), never silently dropped. DEL-4 (a deleted record
is not re-created) is decided by the create plans (``contact_creates``, ``company_plan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.plan import DELETE_COLUMNS, LEFT_OUT_COLUMNS, concat, frame

OTHERS = ("salesforce", "dynamics")
# a deletion: the deleted record (``deleted_crm``, ``deleted_id``, ``deleted_type``, ``at``) and its
# counterpart (``counterpart_crm``, ``counterpart_id``); ``other_crm``: the connection (Salesforce or Dynamics)
# the reason of every deletion not carried starts so (the stored plan files them with the deletes)
NOT_DELETED = "not deleted: "
EVENT_COLUMNS = ("object", "hubspot_id", "other_crm", "deleted_crm", "deleted_id", "deleted_type", "at",
                 "counterpart_crm", "counterpart_id", "counterpart_type", "counterpart_modified_at", "merged_into",
                 "relinked")
# what a status frame holds per record: its CRM, type (API object), whether the mirror has it deleted, since
# when, when it last changed, and (Salesforce) the record it was merged into
STATUS_COLUMNS = ("crm", "id", "type", "deleted", "deleted_at", "modified_at", "merged_into")
# the HubSpot object type a delete of a HubSpot record names
HUBSPOT_TYPE = {"contact": "contact", "company": "company", "deal": "deal"}


@dataclass(frozen=True)
class DeletionSettings:
    """One connection's deletion rules, as the settings state them."""

    # object (contact, company, deal) -> (synced, direction); an object missing is not synced
    objects: dict[str, tuple[bool, Direction]] = field(default_factory=dict)
    delete_when_lead_deleted: bool = False  # DEL-2 (Salesforce)
    delete_when_contact_deleted: bool = False  # DEL-2 (Salesforce)


def _status(status: pd.DataFrame) -> pd.DataFrame:
    s = frame(STATUS_COLUMNS, status).astype({"id": object})
    s["id"] = s["id"].astype(str)
    s["deleted"] = s["deleted"].fillna(False).astype(bool)
    return s.drop_duplicates(["crm", "id"], keep="last")


def history_events(obj: str, deletions: pd.DataFrame, status: pd.DataFrame,
                   links_now: pd.DataFrame) -> pd.DataFrame:
    """Deletions of contacts or companies (``obj``) from the link history (``hubspot_id``, ``other_id``,
    ``deleted_crm``, ``at``), still standing: the deleted record is deleted in its mirror now (not restored)
    and its counterpart is live. ``status``: ``STATUS_COLUMNS`` of the records named; ``links_now``: the
    current links of ``obj`` (``hubspot_id`` and each CRM's id)."""
    if deletions.empty:
        return frame(EVENT_COLUMNS)
    s = _status(status)
    d = deletions.astype({"hubspot_id": str, "other_id": str}).sort_values("at")
    d = d.drop_duplicates(["hubspot_id", "other_id", "deleted_crm"], keep="last").reset_index(drop=True)
    other = s[s["crm"].isin(OTHERS)].set_index("id")
    hub = s[s["crm"] == "hubspot"].set_index("id")
    other_crm = d["other_id"].map(other["crm"])
    from_hubspot = d["deleted_crm"].eq("hubspot").to_numpy()
    deleted_id = np.where(from_hubspot, d["hubspot_id"], d["other_id"])
    counterpart_id = np.where(from_hubspot, d["other_id"], d["hubspot_id"])
    out = pd.DataFrame({
        "object": obj, "hubspot_id": d["hubspot_id"].to_numpy(dtype=object),
        "other_crm": other_crm.to_numpy(dtype=object), "deleted_crm": d["deleted_crm"].to_numpy(dtype=object),
        "deleted_id": deleted_id, "at": pd.to_datetime(d["at"], utc=True).to_numpy(),
        "counterpart_crm": np.where(from_hubspot, other_crm.to_numpy(dtype=object), "hubspot"),
        "counterpart_id": counterpart_id,
    })  # fmt: skip
    hub_type = pd.Series(HUBSPOT_TYPE[obj], index=d.index)
    other_type = d["other_id"].map(other["type"])
    out["deleted_type"] = np.where(from_hubspot, hub_type, other_type)
    out["counterpart_type"] = np.where(from_hubspot, other_type, hub_type)
    out["counterpart_modified_at"] = pd.to_datetime(pd.Series(np.where(
        from_hubspot, d["other_id"].map(other["modified_at"]), d["hubspot_id"].map(hub["modified_at"]))), utc=True)
    deleted_now = np.where(from_hubspot, d["hubspot_id"].map(hub["deleted"]), d["other_id"].map(other["deleted"]))
    counterpart_dead = np.where(from_hubspot, d["other_id"].map(other["deleted"]),
                                d["hubspot_id"].map(hub["deleted"]))
    # a counterpart the mirror does not hold is not known to be live: nothing to delete
    standing = (pd.Series(deleted_now).eq(True) & pd.Series(counterpart_dead).eq(False)).to_numpy()
    out["merged_into"] = np.where(from_hubspot, None, d["other_id"].map(other["merged_into"]).to_numpy(dtype=object))
    # the HubSpot record is linked to another record of the same CRM by now
    now = links_now.astype(object)
    relinked = np.zeros(len(d), dtype=bool)
    for crm in OTHERS:
        linked = now.dropna(subset=[f"{crm}_id"]).drop_duplicates("hubspot_id").set_index("hubspot_id")[f"{crm}_id"]
        cur = d["hubspot_id"].map(linked)
        relinked |= (other_crm.eq(crm) & cur.notna() & cur.astype(object).ne(d["other_id"])).to_numpy(dtype=bool)
    out["relinked"] = relinked
    return frame(EVENT_COLUMNS, out[standing & other_crm.notna().to_numpy()])


def deal_events(links: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Deletions of linked deals (``links``: ``hubspot_id``, ``salesforce_id``, ``dynamics_id``): one side
    deleted in its mirror, the other live. ``status``: ``STATUS_COLUMNS`` of the records named."""
    s = _status(status)
    by = {crm: s[s["crm"] == crm].set_index("id") for crm in ("hubspot", *OTHERS)}
    parts = []
    for crm in OTHERS:
        pairs = links.dropna(subset=["hubspot_id", f"{crm}_id"]).astype(object)
        if pairs.empty:
            continue
        hub_id, other_id = pairs["hubspot_id"].astype(str), pairs[f"{crm}_id"].astype(str)
        hub_dead, other_dead = hub_id.map(by["hubspot"]["deleted"]), other_id.map(by[crm]["deleted"])
        other_type = other_id.map(by[crm]["type"])
        for gone, keep, deleted_crm in ((other_dead, hub_dead, crm), (hub_dead, other_dead, "hubspot")):
            hit = (gone.eq(True) & keep.eq(False)).to_numpy(dtype=bool)
            if not hit.any():
                continue
            from_hubspot = deleted_crm == "hubspot"
            at_of = by[deleted_crm]["deleted_at"]
            parts.append(pd.DataFrame({
                "object": "deal", "hubspot_id": hub_id[hit].to_numpy(), "other_crm": crm,
                "deleted_crm": deleted_crm,
                "deleted_id": (hub_id if from_hubspot else other_id)[hit].to_numpy(),
                "deleted_type": "deal" if from_hubspot else other_type[hit].to_numpy(dtype=object),
                "at": pd.to_datetime((hub_id if from_hubspot else other_id)[hit].map(at_of), utc=True).to_numpy(),
                "counterpart_crm": crm if from_hubspot else "hubspot",
                "counterpart_id": (other_id if from_hubspot else hub_id)[hit].to_numpy(),
                "counterpart_type": other_type[hit].to_numpy(dtype=object) if from_hubspot else "deal",
                "counterpart_modified_at": pd.to_datetime((other_id if from_hubspot else hub_id)[hit].map(
                    by[crm if from_hubspot else "hubspot"]["modified_at"]), utc=True).to_numpy(),
                "merged_into": None if from_hubspot else other_id[hit].map(by[crm]["merged_into"]).to_numpy(
                    dtype=object),
                "relinked": False,
            }))  # fmt: skip
    return concat(EVENT_COLUMNS, parts)


def _flows(direction: Direction, to_hubspot: bool) -> bool:
    """CON-1: the connection syncs the object toward HubSpot (``to_hubspot``) or toward the other CRM."""
    if direction == Direction.TWO_WAY:
        return True
    return direction == (Direction.OTHER_TO_HUBSPOT if to_hubspot else Direction.HUBSPOT_TO_OTHER)


def _why_not(e: pd.DataFrame, rules: DeletionSettings) -> np.ndarray:
    """Per deletion: None when it is carried, else the rule that keeps the counterpart."""
    n = len(e)
    reason = np.full(n, None, dtype=object)

    def mark(mask: np.ndarray | pd.Series, why: str | np.ndarray) -> None:
        m = np.asarray(mask, dtype=bool) & pd.isna(reason)
        reason[m] = why[m] if isinstance(why, np.ndarray) else why

    obj = e["object"].to_numpy(dtype=object)
    from_hubspot = e["deleted_crm"].eq("hubspot").to_numpy()
    deleted = e["deleted_crm"].astype(str) + " " + e["deleted_type"].astype(str) + " " + e["deleted_id"].astype(str)
    merged = e["merged_into"].notna().to_numpy()
    mark(merged, (NOT_DELETED + deleted + " was merged into " + e["merged_into"].astype(str)
                  + " (a merge, not a deletion)").to_numpy(dtype=object))
    for o in ("contact", "company", "deal"):
        synced, direction = rules.objects.get(o, (False, Direction.TWO_WAY))
        mine = obj == o
        if not synced:
            mark(mine, f"{NOT_DELETED}{o} sync is off for this connection (CON-1)")
        else:
            one_way = f"{NOT_DELETED}{o}s sync one way, {direction.value} (CON-1)"
            if not _flows(direction, to_hubspot=True):
                mark(mine & ~from_hubspot, one_way)
            if not _flows(direction, to_hubspot=False):
                mark(mine & from_hubspot, one_way)
    dynamics = e["other_crm"].eq("dynamics").to_numpy()
    mark(dynamics, NOT_DELETED + "DEL-1 a deletion in one app never deletes in the other (Dynamics)")
    mark(obj == "company", NOT_DELETED + "companies are never deleted in the other app (deletions, companies)")
    mark((obj == "contact") & from_hubspot, NOT_DELETED + "DEL-2 a HubSpot contact deleted keeps its Salesforce "
         "record")
    mark((obj == "deal") & from_hubspot, NOT_DELETED + "DEL-3 deleting a HubSpot deal does not delete the "
         "Opportunity")
    kind = e["deleted_type"].astype(str).to_numpy(dtype=object)
    if not rules.delete_when_lead_deleted:
        mark((obj == "contact") & (kind == "Lead"), NOT_DELETED + "DEL-2 deleting the HubSpot contact when its "
             "Salesforce Lead is deleted is off (delete_contact_when_lead_deleted)")
    if not rules.delete_when_contact_deleted:
        mark((obj == "contact") & (kind == "Contact"), NOT_DELETED + "DEL-2 deleting the HubSpot contact when its "
             "Salesforce Contact is deleted is off (delete_contact_when_contact_deleted)")
    mark((obj == "contact") & e["relinked"].astype(bool).to_numpy(), NOT_DELETED + "DEL-2 the HubSpot contact is "
         "linked to another live Salesforce record")
    return reason


def deletion_plan(events: pd.DataFrame, connections: dict[str, DeletionSettings],
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """``events``: ``EVENT_COLUMNS`` (``history_events``, ``deal_events``); ``connections``: per other CRM
    (an enabled connection). Returns target CRM -> the records to delete there (``DELETE_COLUMNS``), and
    every deletion not carried with why (``LEFT_OUT_COLUMNS``)."""
    deletes: dict[str, pd.DataFrame] = {}
    skipped = []
    for crm, rules in connections.items():
        e = events[events["other_crm"] == crm].reset_index(drop=True)
        if e.empty:
            continue
        why = _why_not(e, rules)
        kept = pd.notna(why)
        skipped.append(frame(LEFT_OUT_COLUMNS, pd.DataFrame({
            "object": e["object"], "identity_id": None, "source_crm": e["deleted_crm"], "source_id": e["deleted_id"],
            "target_crm": e["counterpart_crm"], "reason": why})[kept]))  # fmt: skip
        go = e[~kept]
        if go.empty:
            continue
        what = go["deleted_type"].astype(str) + " " + go["deleted_id"].astype(str) + " was deleted"
        rule = np.where(go["object"].eq("contact"), "DEL-2 its Salesforce " + what, "DEL-3 its Salesforce " + what)
        made = pd.DataFrame({
            "object": go["object"], "record_id": go["counterpart_id"], "object_type": go["counterpart_type"],
            "deleted_crm": go["deleted_crm"], "deleted_id": go["deleted_id"], "deleted_type": go["deleted_type"],
            "deleted_at": go["at"], "rule": rule})  # fmt: skip
        for target, part in made.groupby(go["counterpart_crm"].to_numpy(), sort=True):
            deletes[str(target)] = concat(DELETE_COLUMNS, [deletes.get(str(target)), part])
    for target in deletes:  # a record deleted once, whichever connection carries it
        deletes[target] = deletes[target].drop_duplicates(["object", "record_id"]).reset_index(drop=True)
    return deletes, concat(LEFT_OUT_COLUMNS, skipped)


def not_recreated(events: pd.DataFrame, source_crm: str, target_crm: str, ids: pd.Series) -> np.ndarray:
    """DEL-4: which of ``source_crm``'s records (``ids``) are the live counterparts of a record deleted in
    ``target_crm`` and have not changed since the deletion: they are not created there again."""
    e = events[(events["deleted_crm"] == target_crm) & (events["counterpart_crm"] == source_crm)]
    if e.empty:
        return np.zeros(len(ids), dtype=bool)
    changed = pd.to_datetime(e["counterpart_modified_at"], utc=True) > pd.to_datetime(e["at"], utc=True)
    unchanged = set(e.loc[~changed.fillna(False).to_numpy(dtype=bool), "counterpart_id"].astype(str))
    return ids.astype(str).isin(unchanged).to_numpy(dtype=bool)

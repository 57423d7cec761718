"""Contacts to create, per target CRM, from the contact identities (a dry run's creates; issue 12).

HubSpot is the hub (TOP-1): a HubSpot contact missing in Salesforce or Dynamics is created there; a
Salesforce or Dynamics record missing in HubSpot is created in HubSpot (once per identity, however many of
the other CRMs hold it; the next sync then carries it on from HubSpot). Who is created, and who is not, and
why (every candidate left out is listed with its reason, never silently dropped):

- CON-1: only in a direction the connection syncs; the object's switch (``contacts.enabled``).
- CON-3: only a contact with a valid email, unless the connection turns that off.
- CON-5: a HubSpot contact becomes a Salesforce Lead or Contact as set (``new_contact_type``); in Dynamics
  the connection's contact entity (TOP-1).
- CON-6: a Salesforce Lead or Contact creates a HubSpot contact only under its switch.
- CON-7: only HubSpot contacts on the inclusion list (ids or emails) go to Salesforce, when there is one.
- CON-8: only HubSpot contacts meeting every filter of the connection's contacts (on HubSpot properties).
- DEL-4: a record whose counterpart was deleted is not created again unless it changed after the deletion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction, Filter

CREATE_COLUMNS = ("identity_id", "source_crm", "source_id", "object_type", "email")
SKIP_COLUMNS = ("identity_id", "source_crm", "source_id", "target_crm", "reason")


@dataclass(frozen=True)
class ContactCreateSettings:
    """One connection's create rules (Salesforce or Dynamics), as the settings state them."""

    enabled: bool = True
    direction: Direction = Direction.TWO_WAY
    valid_email_only: bool = True  # CON-3
    new_type: str = "Lead"  # CON-5 (Salesforce: Lead or Contact; Dynamics: contact or lead)
    inclusion: tuple[str, ...] | None = None  # CON-7 (Salesforce), HubSpot ids or emails
    filters: tuple[Filter, ...] = ()  # CON-8, on HubSpot properties
    create_from: dict[str, bool] = field(default_factory=dict)  # CON-6: other record type -> creates in HubSpot


def passes(frame: pd.DataFrame, filters: Sequence[Filter]) -> np.ndarray:
    """CON-8: which rows meet every filter (a property missing from the frame has no value)."""
    ok = np.ones(len(frame), dtype=bool)
    for f in filters:
        col = frame[f.property] if f.property in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        text = col.astype("string").str.strip()
        has = (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)
        lowered = text.str.lower()
        value = None if f.value is None else str(f.value).strip().lower()
        values = [str(v).strip().lower() for v in f.values]
        if f.operator == "has_value":
            hit = has
        elif f.operator == "has_no_value":
            hit = ~has
        elif f.operator == "eq":
            hit = (lowered == value).fillna(False).to_numpy(dtype=bool)
        elif f.operator == "neq":
            hit = ~(lowered == value).fillna(False).to_numpy(dtype=bool)
        elif f.operator == "in":
            hit = lowered.isin(values).fillna(False).to_numpy(dtype=bool)
        elif f.operator == "not_in":
            hit = ~lowered.isin(values).fillna(False).to_numpy(dtype=bool)
        else:  # contains
            hit = lowered.str.contains(value or "", regex=False).fillna(False).to_numpy(dtype=bool)
        ok &= hit
    return ok


# what the creates read of ``unified``'s contact members (a plan reads only these: a million rows' other columns
# cost seconds)
CREATE_MEMBER_COLUMNS = ("crm", "id", "type", "email_valid", "modified_at", "identity_id")


def _source(identities: pd.DataFrame, members: pd.DataFrame, crm: str) -> pd.DataFrame:
    """The identities holding a record of ``crm`` (with every CRM's id) and that record's id, type, email
    validity and modification time."""
    mine = members[members["crm"] == crm][["id", "type", "email_valid", "modified_at"]]
    rows = identities[identities[f"{crm}_id"].notna()][["identity_id", "email", "hubspot_id", "salesforce_id",
                                                         "dynamics_id"]]
    out = rows.merge(mine, left_on=f"{crm}_id", right_on="id", how="left").drop(columns="id")
    return out.assign(source_id=out[f"{crm}_id"], source_crm=crm).reset_index(drop=True)


def _left_out(rows: pd.DataFrame, target: str, mask: np.ndarray, reason: str) -> pd.DataFrame:
    out = rows.loc[mask, ["identity_id", "source_crm", "source_id"]].assign(target_crm=target, reason=reason)
    return out[list(SKIP_COLUMNS)]


def _deleted_since(rows: pd.DataFrame, deletions: pd.DataFrame, deleted_in: str, by: str) -> np.ndarray:
    """DEL-4: the record's counterpart in ``deleted_in`` was deleted (the deletion found by ``by``: the
    HubSpot id, or the other CRM's id), and the record has not changed since."""
    gone = deletions[deletions["deleted_crm"] == deleted_in]
    if gone.empty:
        return np.zeros(len(rows), dtype=bool)
    last = gone.groupby(by)["at"].max()
    at = pd.to_datetime(rows["source_id"].astype(object).map(last), utc=True)
    changed = pd.to_datetime(rows["modified_at"], utc=True)
    return (at.notna() & ~(changed > at).fillna(False)).to_numpy(dtype=bool)


def contact_creates(identities: pd.DataFrame, members: pd.DataFrame, hubspot: pd.DataFrame,
                    connections: dict[str, ContactCreateSettings],
                    deletions: pd.DataFrame | None = None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """``identities``/``members``: the ``unified`` contact tables; ``hubspot``: HubSpot contacts' properties
    (``id`` + a column per property the filters read); ``connections``: per other CRM; ``deletions``: links
    that lost a record by deletion (``hubspot_id``, ``crm``, ``at``). Returns target CRM -> the creates
    (``CREATE_COLUMNS``) and every candidate left out with its reason (``SKIP_COLUMNS``)."""
    if deletions is None:
        deletions = pd.DataFrame(columns=["hubspot_id", "other_id", "deleted_crm", "at"])
    creates: dict[str, pd.DataFrame] = {}
    skipped: list[pd.DataFrame] = []

    # HubSpot -> each other CRM
    hs = _source(identities, members, "hubspot")
    props = hubspot.set_index(hubspot["id"].astype(object))
    for crm, rules in connections.items():
        cand = hs[hs[f"{crm}_id"].isna()].reset_index(drop=True)
        if not rules.enabled or rules.direction == Direction.OTHER_TO_HUBSPOT:
            creates[crm] = pd.DataFrame(columns=list(CREATE_COLUMNS))
            continue
        keep = np.ones(len(cand), dtype=bool)
        checks = []
        if rules.valid_email_only:
            checks.append((~cand["email_valid"].fillna(False).astype(bool).to_numpy(), "CON-3 no valid email"))
        if rules.inclusion is not None:
            listed = {str(v).strip().lower() for v in rules.inclusion}
            on_list = cand["source_id"].astype(str).isin(listed) | cand["email"].astype("string").str.lower().isin(
                listed).fillna(False)
            checks.append((~on_list.to_numpy(dtype=bool), "CON-7 not on the inclusion list"))
        if rules.filters:
            view = props.reindex(cand["source_id"].astype(object))
            checks.append((~passes(view.reset_index(drop=True), rules.filters), "CON-8 filtered out"))
        checks.append((_deleted_since(cand, deletions, crm, "hubspot_id"),
                       f"DEL-4 deleted in {crm}, unchanged since"))
        for mask, reason in checks:
            hit = keep & mask
            skipped.append(_left_out(cand, crm, hit, reason))
            keep &= ~mask
        made = cand[keep].assign(object_type=rules.new_type)
        creates[crm] = made[list(CREATE_COLUMNS)].reset_index(drop=True)

    # each other CRM -> HubSpot, once per identity (Salesforce's record first)
    parts = []
    for crm, rules in connections.items():
        src = _source(identities, members, crm)
        src = src[src["hubspot_id"].isna()].reset_index(drop=True)
        if not rules.enabled or rules.direction == Direction.HUBSPOT_TO_OTHER:
            continue
        keep = np.ones(len(src), dtype=bool)
        checks = []
        if rules.valid_email_only:
            checks.append((~src["email_valid"].fillna(False).astype(bool).to_numpy(), "CON-3 no valid email"))
        if rules.create_from:
            allowed = src["type"].astype(str).map(rules.create_from).fillna(True).astype(bool).to_numpy()
            checks.append((~allowed, "CON-6 creating HubSpot contacts from this record type is off"))
        checks.append((_deleted_since(src, deletions, "hubspot", "other_id"),
                       "DEL-4 deleted in hubspot, unchanged since"))
        for mask, reason in checks:
            skipped.append(_left_out(src, "hubspot", keep & mask, reason))
            keep &= ~mask
        parts.append(src[keep])
    if parts:
        to_hs = pd.concat(parts, ignore_index=True).drop_duplicates("identity_id", keep="first")
        creates["hubspot"] = to_hs.assign(object_type="contact")[list(CREATE_COLUMNS)].reset_index(drop=True)
    else:
        creates["hubspot"] = pd.DataFrame(columns=list(CREATE_COLUMNS))
    left_out = pd.concat(skipped, ignore_index=True) if skipped else pd.DataFrame(columns=list(SKIP_COLUMNS))
    return creates, left_out

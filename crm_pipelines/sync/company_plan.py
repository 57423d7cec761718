"""Companies to create per target CRM (COM-1..3) and the lifecycle carried from contacts to companies (COM-4).

From the ``unified`` company identities (an Account / account linked to a HubSpot company by link, shared
contacts or domain; COM-3) and the contact identities:

- COM-1: companies sync per connection under its switch (``sync.<crm>.companies.enabled``) and direction.
- COM-2: a HubSpot company missing in Salesforce becomes an Account only when it is associated with at least
  one contact that syncs as a Salesforce Contact (the transform's ``account_candidates``: not when it has no
  contact, all its contacts sync as Leads, or none is on the inclusion list), or a user requested it
  (``companies.requested``). [product] Dynamics alike: a HubSpot company becomes a Dynamics account when one
  of its contacts syncs with Dynamics (is linked there or planned to be created there), or it is requested.
- COM-3: an Account / account without a HubSpot company becomes one, unless it existed before company sync
  was switched on (``companies.enabled_since``: not modified since) and is neither imported
  (``companies.import_ids``) nor associated with a contact that syncs with HubSpot. [product] Two of them
  with one normalized domain create one HubSpot company (Salesforce's first); the other links to it by
  domain on the next run.
- DEL-4: a company whose counterpart in the target was deleted is not created there again unless it changed
  after the deletion (the deletions: ``sync/deletion_plan.py``).
- COM-4: with company sync on, a HubSpot company's lifecycle stage follows its contacts' (the furthest stage
  among them after CON-9 and DEAL-7, never backwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.deletion_plan import not_recreated
from crm_pipelines.sync.plan import CREATE_COLUMNS, LEFT_OUT_COLUMNS, concat, frame
from crm_pipelines.transform.lifecycle import company_lifecycle

# the other CRM's company record type
COMPANY_TYPE = {"salesforce": "Account", "dynamics": "account"}


@dataclass(frozen=True)
class CompanyCreateSettings:
    """One connection's company rules, as the settings state them."""

    enabled: bool = True  # COM-1
    direction: Direction = Direction.TWO_WAY
    requested: tuple[str, ...] = ()  # COM-2: HubSpot company ids
    enabled_since: pd.Timestamp | None = None  # COM-3
    import_ids: tuple[str, ...] = ()  # COM-3: this CRM's record ids


def _left_out(rows: pd.DataFrame, target: str, reason: str | np.ndarray) -> pd.DataFrame:
    return frame(LEFT_OUT_COLUMNS, rows.assign(object="company", target_crm=target, reason=reason))


def _syncing_hubspot_companies(contact_company: pd.DataFrame, contacts: pd.DataFrame, crm: str,
                               planned: pd.Series) -> pd.Series:
    """HubSpot-held company identities with at least one contact that syncs with ``crm`` (its identity has
    a ``crm`` record, or one is planned)."""
    pairs = contact_company[contact_company["crm"] == "hubspot"]
    in_crm = set(contacts.loc[contacts[f"{crm}_id"].notna(), "identity_id"]) | set(planned)
    return pd.Series(pairs.loc[pairs["contact_identity"].isin(in_crm), "company_identity"].unique(), dtype=object)


def company_creates(companies: pd.DataFrame, candidates: pd.DataFrame, contact_company: pd.DataFrame,
                    contacts: pd.DataFrame, connections: dict[str, CompanyCreateSettings],
                    planned_contacts: dict[str, pd.Series] | None = None,
                    modified: pd.DataFrame | None = None, deleted: pd.DataFrame | None = None,
                    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """``companies``: ``unified`` company identities; ``candidates``: its ``account_candidates`` (COM-2 for
    Salesforce); ``contact_company``: identity pairs (``contact_identity``, ``company_identity``, ``crm``);
    ``contacts``: contact identities; ``planned_contacts``: target CRM -> identity ids of contacts the plan
    creates there; ``modified``: ``crm``, ``id``, ``modified_at`` of the records without a HubSpot company
    (COM-3); ``deleted``: the companies' deletions (``deletion_plan.EVENT_COLUMNS``, DEL-4). Returns target
    CRM -> creates (``CREATE_COLUMNS``) and the candidates left out (``LEFT_OUT_COLUMNS``)."""
    planned_contacts = planned_contacts or {}
    creates: dict[str, pd.DataFrame] = {}
    skipped: list[pd.DataFrame] = []
    hs = companies[companies["hubspot_id"].notna()]

    # HubSpot -> each other CRM (COM-2)
    for crm, rules in connections.items():
        cand = hs[hs[f"{crm}_id"].isna()].assign(source_crm="hubspot", source_id=lambda f: f["hubspot_id"])
        if not rules.enabled or rules.direction == Direction.OTHER_TO_HUBSPOT:
            creates[crm] = frame(CREATE_COLUMNS)
            continue
        requested = cand["hubspot_id"].astype(str).isin(list(rules.requested)).to_numpy()
        if crm == "salesforce":
            why = cand[["hubspot_id"]].merge(candidates[["hubspot_id", "qualifies", "reason"]], on="hubspot_id",
                                             how="left")  # fmt: skip
            ok = why["qualifies"].fillna(False).astype(bool).to_numpy()
            reason = ("COM-2 " + why["reason"].fillna("no_contacts").astype(str).str.replace("_", " ")).to_numpy()
        else:
            syncing = _syncing_hubspot_companies(contact_company, contacts, crm,
                                                 planned_contacts.get(crm, pd.Series(dtype=object)))
            ok = cand["identity_id"].isin(syncing).to_numpy()
            reason = np.full(len(cand), f"COM-2 no contact syncing with {crm}", dtype=object)
        keep = ok | requested
        if deleted is not None:  # DEL-4, even when requested: a request predating the deletion is not a change
            gone = keep & not_recreated(deleted, "hubspot", crm, cand["hubspot_id"])
            skipped.append(_left_out(cand[gone], crm, f"DEL-4 deleted in {crm}, unchanged since"))
            keep &= ~gone
        detail = np.where(requested & ~ok, "requested", cand["domain"].astype(object).fillna("").to_numpy())
        made = cand[keep].assign(object="company", object_type=COMPANY_TYPE[crm], detail=detail[keep])
        creates[crm] = frame(CREATE_COLUMNS, made)
        skipped.append(_left_out(cand[~(ok | requested)], crm, reason[~(ok | requested)]))

    # each other CRM -> HubSpot (COM-1, COM-3), once per normalized domain
    parts = []
    in_hubspot = set(contacts.loc[contacts["hubspot_id"].notna(), "identity_id"]) | set(
        planned_contacts.get("hubspot", pd.Series(dtype=object)))
    for crm, rules in connections.items():
        src = companies[companies["hubspot_id"].isna() & companies[f"{crm}_id"].notna()]
        src = src.assign(source_crm=crm, source_id=src[f"{crm}_id"])
        if not rules.enabled or rules.direction == Direction.HUBSPOT_TO_OTHER or src.empty:
            continue
        keep = np.ones(len(src), dtype=bool)
        if rules.enabled_since is not None:
            since = pd.Timestamp(rules.enabled_since)
            since = since.tz_localize("UTC") if since.tzinfo is None else since.tz_convert("UTC")
            mod = modified if modified is not None else pd.DataFrame(columns=["crm", "id", "modified_at"])
            when = src["source_id"].astype(str).map(
                mod[mod["crm"] == crm].set_index(mod.loc[mod["crm"] == crm, "id"].astype(str))["modified_at"])
            new = (pd.to_datetime(when, utc=True) >= since).fillna(False).to_numpy(dtype=bool)
            pairs = contact_company[(contact_company["crm"] == crm)
                                    & contact_company["contact_identity"].isin(in_hubspot)]  # fmt: skip
            associated = src["identity_id"].isin(pairs["company_identity"]).to_numpy()
            imported = src["source_id"].astype(str).isin(list(rules.import_ids)).to_numpy()
            keep = new | associated | imported
            skipped.append(_left_out(src[~keep], "hubspot", "COM-3 existed before company sync was switched on; "
                                     "neither imported nor associated with a syncing contact"))
        if deleted is not None:
            gone = keep & not_recreated(deleted, crm, "hubspot", src["source_id"])
            skipped.append(_left_out(src[gone], "hubspot", "DEL-4 deleted in hubspot, unchanged since"))
            keep &= ~gone
        parts.append(src[keep])
    if parts:
        to_hs = pd.concat(parts, ignore_index=True)
        twin = to_hs["domain"].notna() & to_hs.duplicated("domain", keep="first")
        first = to_hs[~twin].dropna(subset=["domain"]).set_index("domain")["source_id"]
        dup = to_hs[twin]
        skipped.append(_left_out(dup, "hubspot", ("one HubSpot company per domain: created from "
                                                  + dup["domain"].map(first).astype(str)).to_numpy()))
        made = to_hs[~twin]
        made = made.assign(object="company", object_type="company", detail=made["domain"].astype(object).fillna(""))
        creates["hubspot"] = frame(CREATE_COLUMNS, made)
    else:
        creates["hubspot"] = frame(CREATE_COLUMNS)
    return creates, concat(LEFT_OUT_COLUMNS, skipped)


def lifecycle_updates(contact_stages: pd.DataFrame, company_stages: pd.DataFrame, contact_company: pd.DataFrame,
                      contacts: pd.DataFrame, companies: pd.DataFrame) -> pd.DataFrame:
    """COM-4: HubSpot company lifecycle updates (``UPDATE_COLUMNS`` of ``field_plan``) from the contacts'
    stages after the plan's contact rules. ``contact_stages``: HubSpot contact ``id``, ``new_stage``;
    ``company_stages``: HubSpot company ``id``, ``lifecyclestage`` (current); identity pairs and identities
    translate ``contact_company`` (HubSpot's own associations) into HubSpot ids."""
    pairs = contact_company[contact_company["crm"] == "hubspot"]
    contact_ids = contacts.dropna(subset=["hubspot_id"]).set_index("identity_id")["hubspot_id"]
    company_ids = companies.dropna(subset=["hubspot_id"]).set_index("identity_id")["hubspot_id"]
    rel = pd.DataFrame({"company_id": pairs["company_identity"].map(company_ids).to_numpy(),
                        "contact_id": pairs["contact_identity"].map(contact_ids).to_numpy()}).dropna()
    current = company_stages[["id", "lifecyclestage"]].reset_index(drop=True)
    after = company_lifecycle(rel, contact_stages[["id", "new_stage"]], current)
    moved = after[after["changed"]]
    return pd.DataFrame({"kind": "company", "record_id": moved["id"].astype(object).to_numpy(),
                         "hubspot_id": moved["id"].astype(object).to_numpy(), "source_crm": "hubspot",
                         "source_id": moved["id"].astype(object).to_numpy(), "field": "lifecyclestage",
                         "old": moved["lifecyclestage"].astype(object).to_numpy(),
                         "new": moved["new_stage"].astype(object).to_numpy(),
                         "decided_by": "COM-4 the company follows its contacts' lifecycle stage",
                         "conflict": False})  # fmt: skip

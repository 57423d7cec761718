"""HubSpot contact lifecycle stage updates (DEAL-7, CON-9): stages only move forward, as HubSpot's do.

The transform proposes a stage per HubSpot contact (``unified`` ``contact_lifecycle``): CON-9 for contacts
created or updated from Dynamics, DEAL-7 for contacts of a closed-won HubSpot deal. The plan adds DEAL-7 for
an Opportunity or Dynamics opportunity that is closed won (under that connection's
``deals.closed_won_sets_customer``): its contacts' HubSpot records become customers now, not only once the
deal has reached HubSpot. COM-4 then carries the resulting stages to the companies (``company_plan``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from crm_pipelines.transform.lifecycle import later_stage

CUSTOMER = "customer"


def won_deal_contacts(stages: pd.DataFrame, deals: pd.DataFrame, deal_contact: pd.DataFrame,
                      contacts: pd.DataFrame, crms: Iterable[str]) -> pd.Series:
    """HubSpot contact ids associated (in ``crm``) with a closed-won deal of ``crm``, for each of ``crms``.
    ``stages``: ``deal_stages``; ``deals``, ``contacts``: identities; ``deal_contact``: identity pairs."""
    parts = []
    for crm in crms:
        won = stages.loc[(stages["crm"] == crm) & stages["is_won"].fillna(False).astype(bool), "id"]
        ident = deals.loc[deals[f"{crm}_id"].isin(won), "identity_id"]
        pairs = deal_contact[(deal_contact["crm"] == crm) & deal_contact["deal_identity"].isin(ident)]
        parts.append(pairs["contact_identity"])
    if not parts:
        return pd.Series(dtype=object)
    hubspot = contacts.dropna(subset=["hubspot_id"]).set_index("identity_id")["hubspot_id"]
    return pd.concat(parts, ignore_index=True).map(hubspot).dropna().drop_duplicates().reset_index(drop=True)


def contact_lifecycle_updates(lifecycle: pd.DataFrame, won_contacts: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``lifecycle``: the transform's ``contact_lifecycle`` (``id``, ``lifecyclestage``, ``new_stage``,
    ``rule``); ``won_contacts``: HubSpot contact ids DEAL-7 makes customers. Returns the HubSpot contact
    updates (``field_plan.UPDATE_COLUMNS``) and every contact's stage after them (``id``, ``new_stage``)."""
    current = lifecycle["lifecyclestage"].astype("string")
    proposed = lifecycle["new_stage"].astype("string").fillna(current)
    customer = pd.Series(pd.NA, index=lifecycle.index, dtype="string").mask(lifecycle["id"].isin(won_contacts),
                                                                             CUSTOMER)  # fmt: skip
    after = later_stage(proposed, customer)
    rule = lifecycle["rule"].astype("string").mask(after.fillna("") != proposed.fillna(""), "DEAL-7")
    moved = (after.fillna("") != current.fillna("")).to_numpy(dtype=bool)
    labels = {"DEAL-7": "DEAL-7 a closed-won deal makes its contacts customers",
              "CON-9": "CON-9 the lifecycle stage set for contacts from Dynamics"}
    m = lifecycle[moved]
    updates = pd.DataFrame({"kind": "contact", "record_id": m["id"].astype(object).to_numpy(),
                            "hubspot_id": m["id"].astype(object).to_numpy(), "source_crm": "hubspot",
                            "source_id": m["id"].astype(object).to_numpy(), "field": "lifecyclestage",
                            "old": current[moved].astype(object).to_numpy(),
                            "new": after[moved].astype(object).to_numpy(),
                            "decided_by": rule[moved].map(labels).fillna(rule[moved]).astype(object).to_numpy(),
                            "conflict": False})  # fmt: skip
    return updates, pd.DataFrame({"id": lifecycle["id"].to_numpy(), "new_stage": after.to_numpy()})

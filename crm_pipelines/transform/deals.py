"""Deal identities (DEAL-5): by existing link only - deals are never deduplicated automatically.

Every live deal that is not linked is its own identity; the planner creates it in the other CRM.
"""

from __future__ import annotations

import pandas as pd

from crm_pipelines import catalog
from crm_pipelines.transform.frames import Mirrors, links_of, text

# crm -> its deal object (the catalog's), HubSpot first
DEAL_OBJECTS = {crm: obj for crm in catalog.CRMS for c, obj in catalog.paired_with("deals") if c == crm}
DEAL_COLUMNS = ("identity_id", "hubspot_id", "salesforce_id", "dynamics_id", "linked")


def deal_identities(mirrors: Mirrors, links: pd.DataFrame | None = None) -> pd.DataFrame:
    link = links_of(links, "deal").dropna(subset=["hubspot_id"]).drop_duplicates("hubspot_id")
    ids = link[["hubspot_id", "salesforce_id", "dynamics_id"]].copy()
    ids["identity_id"] = "hubspot:" + ids["hubspot_id"]
    ids["linked"] = True
    parts = [ids]
    for crm, obj in DEAL_OBJECTS.items():
        live = text(mirrors.live(crm, obj)["id"])
        free = live[~live.isin(link[f"{crm}_id"].dropna())]
        parts.append(pd.DataFrame({"identity_id": crm + ":" + free, f"{crm}_id": free, "linked": False}))
    out = pd.concat(parts, ignore_index=True).reindex(columns=list(DEAL_COLUMNS))
    for c in DEAL_COLUMNS[:-1]:
        out[c] = out[c].astype("string")
    out["linked"] = out["linked"].astype(bool)
    return out

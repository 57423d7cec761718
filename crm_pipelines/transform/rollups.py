"""Contact rollups, exactly as SPEC's rollup table defines them (computed per HubSpot contact).

- ``num_associated_deals``: number of associated deals
- ``first_deal_created_date``: earliest create date of an associated deal
- ``recent_deal_close_date``: close date of the most recently *closed* closed-won deal
- ``recent_deal_amount``: amount of the most recently *created* closed-won deal - deliberately not the
  deal behind ``recent_deal_close_date`` (HubSpot defines it this way)
- ``total_revenue``: sum of the amounts of closed-won deals

Contacts without a closed-won deal get NA for the three won-deal properties (HubSpot leaves them empty
rather than writing 0). Ties on create date are broken by the higher deal id, the later-created record.
"""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform.frames import Mirrors, flag, text, utc

ROLLUP_COLUMNS = ("contact_id", "num_associated_deals", "first_deal_created_date", "recent_deal_close_date",
                  "recent_deal_amount", "total_revenue")


def hubspot_deal_facts(mirrors: Mirrors) -> pd.DataFrame:
    """``deal_id``, ``created_at``, ``close_date``, ``amount`` (Float64), ``is_closed``, ``is_won`` of live deals.

    Won/closed come from the stage's metadata in the pipelines frame (a stage id alone says nothing).
    """
    deals = mirrors.live("hubspot", "deals", ["pipeline", "dealstage", "amount", "closedate", "createdate"])
    stages = mirrors.get("hubspot", "pipelines", ["pipeline_id", "stage_id", "is_closed", "is_won"])
    stages = pd.DataFrame({
        "pipeline": text(stages["pipeline_id"]), "dealstage": text(stages["stage_id"]),
        "is_closed": flag(stages["is_closed"]), "is_won": flag(stages["is_won"]),
    }).drop_duplicates(["pipeline", "dealstage"])
    out = pd.DataFrame({
        "deal_id": text(deals["id"]).to_numpy(),
        "pipeline": text(deals["pipeline"]).to_numpy(),
        "dealstage": text(deals["dealstage"]).to_numpy(),
        "created_at": utc(deals["createdate"]).array,
        "close_date": utc(deals["closedate"]).array,
        "amount": pd.to_numeric(deals["amount"], errors="coerce").astype("Float64").to_numpy(),
    })
    out = out.merge(stages, on=["pipeline", "dealstage"], how="left")
    out["is_closed"] = out["is_closed"].fillna(False).astype(bool)
    out["is_won"] = out["is_won"].fillna(False).astype(bool)
    return out


def hubspot_deal_contacts(mirrors: Mirrors) -> pd.DataFrame:
    """Unique (``deal_id``, ``contact_id``) pairs from the associations frame, whichever direction was read."""
    a = mirrors.live("hubspot", "associations", ["from_type", "from_id", "to_type", "to_id"])
    fwd = a[(a["from_type"] == "deals") & (a["to_type"] == "contacts")]
    back = a[(a["from_type"] == "contacts") & (a["to_type"] == "deals")]
    pairs = pd.concat([
        pd.DataFrame({"deal_id": text(fwd["from_id"]), "contact_id": text(fwd["to_id"])}),
        pd.DataFrame({"deal_id": text(back["to_id"]), "contact_id": text(back["from_id"])}),
    ], ignore_index=True)
    return pairs.drop_duplicates(ignore_index=True)


def contact_rollups(deals: pd.DataFrame, deal_contacts: pd.DataFrame, live_contacts=None) -> pd.DataFrame:
    """One row per live contact with at least one associated (live) deal; ``ROLLUP_COLUMNS``.

    ``live_contacts`` (ids): an association can outlive its contact (deleted, or never read), and HubSpot
    has no record to carry a rollup for it; None keeps every contact the pairs name."""
    if live_contacts is not None:
        deal_contacts = deal_contacts[deal_contacts["contact_id"].isin(pd.Index(live_contacts, dtype=object))]
    joined = deal_contacts[["deal_id", "contact_id"]].merge(
        deals[["deal_id", "created_at", "close_date", "amount", "is_won"]], on="deal_id", how="inner")
    by = joined.groupby("contact_id", sort=True)
    out = pd.DataFrame({
        "num_associated_deals": by["deal_id"].nunique(),
        "first_deal_created_date": by["created_at"].min(),
    })
    won = joined[joined["is_won"]]
    latest_close = won.sort_values(["contact_id", "close_date", "deal_id"], na_position="first").drop_duplicates(
        "contact_id", keep="last").set_index("contact_id")["close_date"]
    latest_created = won.sort_values(["contact_id", "created_at", "deal_id"], na_position="first").drop_duplicates(
        "contact_id", keep="last").set_index("contact_id")["amount"]
    out["recent_deal_close_date"] = latest_close.reindex(out.index)
    out["recent_deal_amount"] = latest_created.reindex(out.index).astype("Float64")
    out["total_revenue"] = won.groupby("contact_id")["amount"].sum(min_count=1).reindex(out.index).astype("Float64")
    out.index.name = "contact_id"
    return out.reset_index()[list(ROLLUP_COLUMNS)]

"""Lifecycle stage rules (CON-9, COM-4, DEAL-7). Stages only move forward, as HubSpot's do by default."""

from __future__ import annotations

import numpy as np
import pandas as pd

# HubSpot's internal values in funnel order; "other" is outside the funnel and never overrides a stage
ORDER = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
         "evangelist")
_RANK = {s: i for i, s in enumerate(ORDER)}


def rank(stages: pd.Series) -> pd.Series:
    return stages.astype("string").str.strip().str.lower().map(_RANK).astype("Int64")


def later_stage(current: pd.Series, proposed: pd.Series) -> pd.Series:
    """The further of the two stages; the current one where the proposal is not further (or absent)."""
    cur, new = rank(current), rank(proposed)
    take = new.notna() & (cur.isna() | (new > cur)).fillna(True)
    return current.astype("string").where(~take.astype(bool), proposed.astype("string"))


def contact_lifecycle(contacts: pd.DataFrame, from_dynamics: pd.Series, dynamics_stage: str | None,
                      won_contact_ids: pd.Series, closed_won_sets_customer: bool) -> pd.DataFrame:
    """Per HubSpot contact (``id``, ``lifecyclestage``): the stage after the rules.

    CON-9: contacts created or updated from Dynamics get ``dynamics_stage``; DEAL-7 (setting): contacts of a
    closed-won deal become ``customer``. Columns: id, lifecyclestage (current), new_stage, changed, rule.
    """
    stage = contacts["lifecyclestage"].astype("string")
    rule = pd.Series(pd.NA, index=contacts.index, dtype="string")
    new = stage
    if dynamics_stage:
        proposed = pd.Series(np.where(from_dynamics.to_numpy(dtype=bool), dynamics_stage, None), index=contacts.index)
        after = later_stage(new, proposed)
        rule = rule.mask(after.fillna("") != new.fillna(""), "CON-9")
        new = after
    if closed_won_sets_customer:
        won = contacts["id"].isin(won_contact_ids)
        proposed = pd.Series(np.where(won.to_numpy(), "customer", None), index=contacts.index)
        after = later_stage(new, proposed)
        rule = rule.mask(after.fillna("") != new.fillna(""), "DEAL-7")
        new = after
    return pd.DataFrame({"id": contacts["id"], "lifecyclestage": stage, "new_stage": new,
                         "changed": (new.fillna("") != stage.fillna("")).astype(bool), "rule": rule})


def company_lifecycle(company_contacts: pd.DataFrame, contact_stages: pd.DataFrame,
                      companies: pd.DataFrame) -> pd.DataFrame:
    """COM-4: a company's stage follows its contacts' - the furthest stage among them, never backwards.

    ``company_contacts``: (company_id, contact_id); ``contact_stages``: (id, new_stage);
    ``companies``: (id, lifecyclestage). Columns: id, lifecyclestage, new_stage, changed.
    """
    # ids as objects on both sides: an empty frame's column comes typed float and the join refuses it
    stages = contact_stages.rename(columns={"id": "contact_id"}).astype({"contact_id": object})
    j = company_contacts.astype({"contact_id": object}).merge(stages, on="contact_id")
    j = j.assign(_r=rank(j["new_stage"])).dropna(subset=["_r"]).sort_values(["company_id", "_r"])
    best = j.drop_duplicates("company_id", keep="last").set_index("company_id")["new_stage"]
    cur = companies["lifecyclestage"].astype("string") if "lifecyclestage" in companies else pd.Series(
        pd.NA, index=companies.index, dtype="string")
    proposed = companies["id"].map(best)
    new = later_stage(cur, proposed)
    return pd.DataFrame({"id": companies["id"], "lifecyclestage": cur, "new_stage": new,
                         "changed": (new.fillna("") != cur.fillna("")).astype(bool)})

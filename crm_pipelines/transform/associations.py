"""Associations to carry (DEAL-6, TOP-1), expressed between identities rather than CRM records.

contact->company, deal->contact (Salesforce: OpportunityContactRole; Dynamics: the opportunity's parent
contact) and deal->company (Opportunity.AccountId; Dynamics: parent account). Each row says which CRM
holds the association, so the planner can create it where it is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipelines.transform.frames import Mirrors, text

CRMS = ("hubspot", "salesforce", "dynamics")


def deal_contact_pairs(mirrors: Mirrors, src: bool = False) -> pd.DataFrame:
    """(crm, deal_id, contact_id) of the three CRMs (``src``: see ``company_contact_pairs``)."""
    a = mirrors.live("hubspot", "associations", ["from_type", "from_id", "to_type", "to_id"])
    fwd = a[(a["from_type"] == "deals") & (a["to_type"] == "contacts")]
    back = a[(a["from_type"] == "contacts") & (a["to_type"] == "deals")]
    ocr = mirrors.live("salesforce", "OpportunityContactRole", ["OpportunityId", "ContactId"])
    dy = mirrors.live("dynamics", "opportunities", ["_parentcontactid_value"])
    parts = [("hubspot", fwd["from_id"], fwd["to_id"], fwd["id"]),
             ("hubspot", back["to_id"], back["from_id"], back["id"]),
             ("salesforce", ocr["OpportunityId"], ocr["ContactId"], ocr["id"]),
             ("dynamics", dy["id"], dy["_parentcontactid_value"], dy["id"])]
    return _pairs(parts, "deal_id", "contact_id", src)


def deal_company_pairs(mirrors: Mirrors, src: bool = False) -> pd.DataFrame:
    """(crm, deal_id, company_id) of the three CRMs (``src``: see ``company_contact_pairs``)."""
    a = mirrors.live("hubspot", "associations", ["from_type", "from_id", "to_type", "to_id"])
    fwd = a[(a["from_type"] == "deals") & (a["to_type"] == "companies")]
    back = a[(a["from_type"] == "companies") & (a["to_type"] == "deals")]
    opp = mirrors.live("salesforce", "Opportunity", ["AccountId"])
    dy = mirrors.live("dynamics", "opportunities", ["_parentaccountid_value"])
    parts = [("hubspot", fwd["from_id"], fwd["to_id"], fwd["id"]),
             ("hubspot", back["to_id"], back["from_id"], back["id"]),
             ("salesforce", opp["id"], opp["AccountId"], opp["id"]),
             ("dynamics", dy["id"], dy["_parentaccountid_value"], dy["id"])]
    return _pairs(parts, "deal_id", "company_id", src)


def _pairs(parts, left: str, right: str, src: bool = False) -> pd.DataFrame:
    out = pd.concat([pd.DataFrame({"crm": crm, left: text(a).to_numpy(), right: text(b).to_numpy(),
                                   "src": text(r).to_numpy()})
                     for crm, a, b, r in parts], ignore_index=True)
    out["crm"] = out["crm"].astype("string")
    out = out.dropna(subset=[left, right])
    if src:
        return out.reset_index(drop=True)
    return out.drop(columns="src").drop_duplicates(ignore_index=True)


def record_identity(members: pd.DataFrame, roles: tuple[str, ...] = ("linked", "matched", "converted")) -> pd.DataFrame:
    """(crm, id) -> identity_id for the records that represent an identity."""
    return members.loc[members["role"].isin(list(roles)), ["crm", "id", "identity_id"]]


class IdentityLookup:
    """Record id -> identity id, one hash index per CRM, built once and reused for every association kind."""

    def __init__(self, members: pd.DataFrame) -> None:
        crm = members["crm"].to_numpy(dtype=object)
        ids = members["id"].to_numpy(dtype=object)
        ident = members["identity_id"].to_numpy(dtype=object)
        self._by: dict[str, tuple[pd.Index, np.ndarray]] = {}
        for c in CRMS:
            sel = crm == c
            index = pd.Index(ids[sel], dtype=object)
            keep = ~index.duplicated()
            self._by[c] = (index[keep], ident[sel][keep])

    def __call__(self, crm: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), None, dtype=object)
        for c, (index, ident) in self._by.items():
            sel = np.flatnonzero(crm == c)
            if len(sel) and len(index):
                pos = index.get_indexer(ids[sel])
                ok = pos >= 0
                out[sel[ok]] = ident[pos[ok]]
        return out


def identity_pairs(pairs: pd.DataFrame, left: str, right: str, left_ids: IdentityLookup,
                   right_ids: IdentityLookup) -> pd.DataFrame:
    """Record pairs as identity pairs: (left_identity, right_identity, crm) - one row per CRM holding it.

    Pairs whose records have no identity (ambiguous duplicates, records outside the sync) are dropped:
    they are not carried.
    """
    crm = pairs["crm"].to_numpy(dtype=object)
    li = left_ids(crm, pairs[left].to_numpy(dtype=object))
    ri = right_ids(crm, pairs[right].to_numpy(dtype=object))
    ok = pd.notna(li) & pd.notna(ri)
    out = pd.DataFrame({f"{left}_identity": pd.Series(li[ok], dtype=object),
                        f"{right}_identity": pd.Series(ri[ok], dtype=object),
                        "crm": pd.Series(crm[ok], dtype=object)})
    return out.drop_duplicates(ignore_index=True)


def companies_as_members(companies: pd.DataFrame) -> pd.DataFrame:
    """Company identities as (crm, id, identity_id) rows."""
    parts = [pd.DataFrame({"crm": crm, "id": companies[f"{crm}_id"], "identity_id": companies["identity_id"]})
             for crm in ("hubspot", "salesforce", "dynamics")]
    out = pd.concat(parts, ignore_index=True).dropna()
    out["crm"] = out["crm"].astype("string")
    return out


def deals_as_members(deals: pd.DataFrame) -> pd.DataFrame:
    return companies_as_members(deals)

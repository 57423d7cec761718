"""Company identities (COM-1, COM-3) and which HubSpot companies qualify for Account creation (COM-2).

An Account (Salesforce) or account (Dynamics) links to a HubSpot company by, in order:

1. an existing link (kept, never re-pointed);
2. the associated contacts (COM-3): the HubSpot company sharing the most contact *identities* with it
   (ties: lowest HubSpot id); each side is used once - the pair with most shared contacts goes first;
3. the normalized website domain ([product] secondary match); when several HubSpot companies share the
   domain, the lowest id wins and the others are reported as ambiguity findings.

Salesforce and Dynamics are matched independently (they meet only through HubSpot, TOP-1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines.transform.frames import Mirrors, links_of, text

OTHER = {"salesforce": ("Account", "Website", "Account"), "dynamics": ("accounts", "websiteurl", "account")}
COMPANY_COLUMNS = ("identity_id", "hubspot_id", "salesforce_id", "salesforce_method", "dynamics_id",
                   "dynamics_method", "domain")


@dataclass(frozen=True)
class CompanyIdentities:
    identities: pd.DataFrame
    findings: pd.DataFrame  # crm, id, domain, hubspot_id (chosen), other_hubspot_id, reason


def normalize_domains(values: pd.Series) -> pd.Series:
    """``"HTTPS://WWW.Example.de/en/"`` -> ``"example.de"``: scheme, ``www.``, port, path and case removed."""
    s = text(values).str.strip().str.lower()
    s = s.str.replace(r"^[a-z][a-z0-9+.-]*://", "", regex=True)
    s = s.str.replace(r"[/?#:].*$", "", regex=True).str.replace(r"^www\d*\.", "", regex=True).str.rstrip(".")
    return s.mask(~s.str.contains(".", regex=False).fillna(False).astype(bool))


def company_contact_pairs(mirrors: Mirrors, src: bool = False) -> pd.DataFrame:
    """(crm, company_id, contact_id) for every contact->company association of the three CRMs (DEAL-6 too).

    ``src=True`` keeps the id of the record each pair comes from (association, Contact, contact, lead) and
    does not deduplicate: an incremental run replaces a changed record's pairs by that id."""
    a = mirrors.live("hubspot", "associations", ["from_type", "from_id", "to_type", "to_id"])
    fwd = a[(a["from_type"] == "contacts") & (a["to_type"] == "companies")]
    back = a[(a["from_type"] == "companies") & (a["to_type"] == "contacts")]
    sf = mirrors.live("salesforce", "Contact", ["AccountId"])
    dyc = mirrors.live("dynamics", "contacts", ["_parentcustomerid_value"])
    dyl = mirrors.live("dynamics", "leads", ["_parentaccountid_value"])
    parts = [
        ("hubspot", fwd["to_id"], fwd["from_id"], fwd["id"]), ("hubspot", back["from_id"], back["to_id"], back["id"]),
        ("salesforce", sf["AccountId"], sf["id"], sf["id"]),
        ("dynamics", dyc["_parentcustomerid_value"], dyc["id"], dyc["id"]),
        ("dynamics", dyl["_parentaccountid_value"], dyl["id"], dyl["id"]),
    ]
    out = pd.concat([pd.DataFrame({"crm": crm, "company_id": text(c).to_numpy(), "contact_id": text(p).to_numpy(),
                                   "src": text(r).to_numpy()})
                     for crm, c, p, r in parts], ignore_index=True)
    out["crm"] = out["crm"].astype("string")
    out = out.dropna(subset=["company_id", "contact_id"])
    if src:
        return out.reset_index(drop=True)
    return out.drop(columns="src").drop_duplicates(ignore_index=True)


def company_domains(mirrors: Mirrors) -> pd.DataFrame:
    """(crm, id, domain) of every live HubSpot company, SF Account and Dynamics account, domain normalized:
    the only record values company matching reads (kept so an incremental run can re-match a few)."""
    hs = mirrors.live("hubspot", "companies", ["domain", "website"])
    parts = [pd.DataFrame({"crm": "hubspot", "id": text(hs["id"]).to_numpy(),
                           "domain": normalize_domains(text(hs["domain"]).fillna(text(hs["website"]))).to_numpy()})]
    for crm, (obj, web, _) in OTHER.items():
        acc = mirrors.live(crm, obj, [web])
        parts.append(pd.DataFrame({"crm": crm, "id": text(acc["id"]).to_numpy(),
                                   "domain": normalize_domains(acc[web]).to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"crm": "string", "id": "string", "domain": "string"})


def company_identities(mirrors: Mirrors, contact_members: pd.DataFrame, links: pd.DataFrame | None = None,
                       pairs: pd.DataFrame | None = None, domains: pd.DataFrame | None = None) -> CompanyIdentities:
    """Company identities from the mirrors, contact identities' ``members`` and the link frame."""
    domains = company_domains(mirrors) if domains is None else domains
    pairs = company_contact_pairs(mirrors) if pairs is None else pairs
    ident = contact_members.loc[contact_members["role"].isin(["linked", "matched", "converted"]),
                                ["crm", "id", "identity_id"]].rename(columns={"id": "contact_id"})
    pairs = pairs[["crm", "company_id", "contact_id"]].merge(ident, on=["crm", "contact_id"], how="inner")
    return match_companies(domains, pairs, links_of(links, "company"))


def match_companies(domains: pd.DataFrame, pairs: pd.DataFrame, link: pd.DataFrame) -> CompanyIdentities:
    """The matching itself, from ``company_domains`` rows, (crm, company_id, identity_id) contact pairs and
    the company links. Each account's outcome depends only on the records connected to it by links,
    shared contact identities and equal domains, so a connected subset gives that subset's rows."""
    hs = domains.loc[domains["crm"] == "hubspot", ["id", "domain"]].rename(columns={"id": "hubspot_id"})
    hs = hs.reset_index(drop=True)
    hs_contacts = pairs.loc[pairs["crm"] == "hubspot", ["company_id", "identity_id"]].rename(
        columns={"company_id": "hubspot_id"}).drop_duplicates()
    result = hs.copy()
    findings = []
    others = []
    for crm in OTHER:
        acc = domains.loc[domains["crm"] == crm, ["id", "domain"]].rename(columns={"id": "other_id"})
        acc = acc.reset_index(drop=True)
        lk = link.dropna(subset=["hubspot_id", f"{crm}_id"])[["hubspot_id", f"{crm}_id"]].rename(
            columns={f"{crm}_id": "other_id"}).drop_duplicates("hubspot_id").drop_duplicates("other_id")
        lk = lk.assign(method="link")
        free_acc = acc[~acc["other_id"].isin(lk["other_id"])]
        free_hs = hs[~hs["hubspot_id"].isin(lk["hubspot_id"])]
        # COM-3: shared contact identities
        acc_contacts = pairs.loc[pairs["crm"] == crm, ["company_id", "identity_id"]].rename(
            columns={"company_id": "other_id"}).drop_duplicates()
        acc_contacts = acc_contacts[acc_contacts["other_id"].isin(free_acc["other_id"])]
        shared = acc_contacts.merge(hs_contacts[hs_contacts["hubspot_id"].isin(free_hs["hubspot_id"])],
                                    on="identity_id")
        by_contacts = shared.groupby(["other_id", "hubspot_id"]).size().rename("shared").reset_index()
        by_contacts = by_contacts.sort_values(["shared", "hubspot_id", "other_id"], ascending=[False, True, True])
        by_contacts = by_contacts.drop_duplicates("other_id").drop_duplicates("hubspot_id")
        by_contacts = by_contacts[["hubspot_id", "other_id"]].assign(method="contacts")
        # secondary: domain
        rest_acc = free_acc[~free_acc["other_id"].isin(by_contacts["other_id"]) & free_acc["domain"].notna()]
        rest_hs = free_hs[~free_hs["hubspot_id"].isin(by_contacts["hubspot_id"]) & free_hs["domain"].notna()]
        cand = rest_acc.merge(rest_hs, on="domain").sort_values(["other_id", "hubspot_id"])
        by_domain = cand.drop_duplicates("other_id").drop_duplicates("hubspot_id")
        extra = cand.merge(by_domain[["other_id", "hubspot_id"]].rename(columns={"hubspot_id": "chosen"}),
                           on="other_id", how="left")
        extra = extra[extra["hubspot_id"] != extra["chosen"]]
        findings.append(pd.DataFrame({
            "crm": crm, "id": extra["other_id"], "domain": extra["domain"], "hubspot_id": extra["chosen"],
            "other_hubspot_id": extra["hubspot_id"],
            "reason": np.where(extra["chosen"].isna(), "domain_taken", "several_companies_share_domain"),
        }))
        matched = pd.concat([lk, by_contacts, by_domain[["hubspot_id", "other_id"]].assign(method="domain")],
                            ignore_index=True)
        result = result.merge(matched.rename(columns={"other_id": f"{crm}_id", "method": f"{crm}_method"}),
                              on="hubspot_id", how="left")
        unmatched = acc[~acc["other_id"].isin(matched["other_id"])]
        others.append(pd.DataFrame({"hubspot_id": pd.NA, f"{crm}_id": unmatched["other_id"],
                                    f"{crm}_method": "unmatched", "domain": unmatched["domain"]}))
    result = pd.concat([result, *others], ignore_index=True)
    result["identity_id"] = ("hubspot:" + result["hubspot_id"]).fillna(
        "salesforce:" + result["salesforce_id"]).fillna("dynamics:" + result["dynamics_id"])
    out = result.reindex(columns=list(COMPANY_COLUMNS)).astype("string")
    f = pd.concat(findings, ignore_index=True).astype("string") if findings else pd.DataFrame()
    return CompanyIdentities(out, f)


def account_creation_candidates(
    companies: pd.DataFrame,
    pairs: pd.DataFrame,
    contacts: pd.DataFrame,
    contact_members: pd.DataFrame,
    new_contact_type: str = "Lead",
    valid_email_only: bool = True,
    inclusion_list: Iterable[str] | None = None,
    requested: Iterable[str] = (),
) -> pd.DataFrame:
    """COM-2, per HubSpot company without an Account: ``qualifies`` and ``reason``.

    A contact "syncs as an SF Contact" when its identity's SF record is a Contact, or it has none yet and
    new records are created as Contacts (CON-5); it must have a valid email (CON-3, if set) and be in the
    inclusion list (CON-7, HubSpot ids or emails; None = everyone). ``requested``: HubSpot company ids a
    user asked to create.
    """
    hs = companies.dropna(subset=["hubspot_id"])
    hs = hs[hs["salesforce_id"].isna()][["hubspot_id"]]
    rel = pairs.loc[pairs["crm"] == "hubspot", ["company_id", "contact_id"]].rename(
        columns={"company_id": "hubspot_id", "contact_id": "id"})
    mem = contact_members.loc[(contact_members["crm"] == "hubspot"), ["id", "identity_id"]]
    rel = rel.merge(mem, on="id", how="inner").merge(
        contacts[["identity_id", "email", "salesforce_type"]], on="identity_id", how="left")
    valid = contact_members.loc[contact_members["crm"] == "hubspot", ["id", "email_valid"]]
    rel = rel.merge(valid, on="id", how="left")
    included = pd.Series(True, index=rel.index)
    if inclusion_list is not None:
        allowed = pd.Series(list(inclusion_list), dtype="string")
        included = rel["id"].isin(allowed) | rel["email"].isin(allowed.str.strip().str.lower())
    email_ok = rel["email_valid"].fillna(False).astype(bool) if valid_email_only else pd.Series(True, index=rel.index)
    as_contact = (rel["salesforce_type"] == "Contact").fillna(False) | (
        rel["salesforce_type"].isna() & (new_contact_type == "Contact"))
    syncing = (included & email_ok).astype(bool)
    rel = rel.assign(syncing=syncing, ok_contact=syncing & as_contact.astype(bool), included=included.astype(bool))
    g = rel.groupby("hubspot_id").agg(n=("id", "size"), ok=("syncing", "sum"), ok_contact=("ok_contact", "sum"),
                                      inc=("included", "sum"))
    out = hs.merge(g, left_on="hubspot_id", right_index=True, how="left").fillna({"n": 0, "ok": 0,
                                                                                   "ok_contact": 0, "inc": 0})
    req = out["hubspot_id"].isin(list(requested))
    reason = np.select(
        [req, out["ok_contact"] > 0, out["n"] == 0, out["inc"] == 0, out["ok"] > 0],
        ["requested", "has_syncing_contact", "no_contacts", "no_contact_in_inclusion_list", "all_contacts_are_leads"],
        "no_syncing_contact")
    return pd.DataFrame({"hubspot_id": out["hubspot_id"].to_numpy(), "qualifies": (req | (out["ok_contact"] > 0))
                         .to_numpy(), "reason": reason})

"""Fill the organization from the shared universe: Dynamics' share of people, companies, deals and owners.

Vectorised per universe chunk (pandas/numpy, then one ``executemany`` per table), indexes built after the
load: a million people seed without a per-row Python loop beyond building the insert tuples.
Record ids are GUIDs derived from the universe's stable ids, the seed and the table, so the same
``(seed, scale)`` always yields the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from crm_pipelines.sandbox.dynamics.catalog import ACCOUNT, CONTACT, CURRENCIES, LEAD, OPPORTUNITY, SYSTEMUSER, Table
from crm_pipelines.sandbox.dynamics.store import DynamicsStore
from crm_pipelines.sandbox.universe import Universe

_MASK = (1 << 64) - 1
_SALTS = {"contact": 0x11, "lead": 0x12, "account": 0x13, "opportunity": 0x14, "systemuser": 0x15, "aad": 0x16}
_EUR_COUNTRIES = ("DE", "FR", "ES", "IE")
# universe (pipeline, stage) -> Dynamics salesstage (FACTS §I: 0 Qualify, 1 Develop, 2 Propose, 3 Close)
_SALESSTAGE = {
    ("sales", "appointment"): 0, ("sales", "qualified"): 0, ("sales", "presentation"): 1,
    ("sales", "decision"): 2, ("sales", "contract"): 3, ("enterprise", "discovery"): 0,
    ("enterprise", "solution"): 1, ("enterprise", "proposal"): 2, ("enterprise", "negotiation"): 3,
}
_PROBABILITY = {0: 10, 1: 30, 2: 60, 3: 80}
_STEPNAME = {0: "1-Qualify", 1: "2-Develop", 2: "3-Propose", 3: "4-Close"}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection of uint64, so distinct ids give distinct GUIDs."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def guids(ids: np.ndarray | pd.Series, kind: str, seed: int) -> np.ndarray:
    """Deterministic version-4-shaped GUIDs (lowercase, as the Web API writes them)."""
    x = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    salt = np.uint64((_SALTS[kind] << 56) ^ (seed * 0x9E3779B97F4A7C15 & _MASK))
    hi = _mix(x ^ salt)
    lo = _mix(hi ^ np.uint64(0xD1B54A32D192ED03))
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (lo & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    out = [
        f"{h >> 32:08x}-{(h >> 16) & 0xFFFF:04x}-{h & 0xFFFF:04x}-{lo_ >> 48:04x}-{lo_ & 0xFFFFFFFFFFFF:012x}"
        for h, lo_ in zip(hi.tolist(), lo.tolist(), strict=True)
    ]
    return np.array(out, dtype=object)


def _text(s: pd.Series) -> list[Any]:
    return s.astype(object).where(s.notna(), None).tolist()


def _iso(s: pd.Series) -> list[Any]:
    """``YYYY-MM-DDTHH:MM:SSZ``, the Web API's UTC form (seconds precision)."""
    naive = s.dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    text = np.char.add(np.datetime_as_string(naive, unit="s"), "Z").astype(object)
    return np.where(s.isna().to_numpy(), None, text).tolist()


def _date(s: pd.Series) -> list[Any]:
    naive = s.dt.tz_convert(None).to_numpy().astype("datetime64[D]")
    text = np.datetime_as_string(naive, unit="D").astype(object)
    return np.where(s.isna().to_numpy(), None, text).tolist()


def _hash(ids: np.ndarray, salt: int) -> np.ndarray:
    """A per-record uniform in [0, 1) for attributes the universe does not carry (lead source, rating)."""
    return (_mix(np.asarray(ids, dtype=np.int64).astype(np.uint64) ^ np.uint64(salt)) >> np.uint64(11)).astype(
        np.float64
    ) / float(1 << 53)


def _lookup(ids: pd.Series, table: np.ndarray) -> list[Any]:
    """Map nullable universe ids through a guid-per-id array (None where absent)."""
    arr = ids.to_numpy(dtype="float64", na_value=np.nan)
    ok = ~np.isnan(arr)
    out = np.full(len(arr), None, dtype=object)
    out[ok] = table[arr[ok].astype(np.int64)]
    return out.tolist()


def _insert(store: DynamicsStore, table: Table, data: dict[str, list[Any]], versions: range) -> None:
    data = {**data, "versionnumber": list(versions)}
    store.insert_rows(table, list(data), zip(*data.values(), strict=True))


def seed_organization(store: DynamicsStore, universe: Universe, progress: Callable[[str], Any]) -> dict[str, str]:
    """Load everything; returns the systemuserid of each owner email (the app user is the first owner)."""
    seed = universe.seed
    store.drop_indexes()
    owners = universe.owners()
    user_ids = guids(owners["owner_id"], "systemuser", seed)
    created = pd.Series(pd.Timestamp("2019-01-01T08:00:00Z"), index=owners.index)
    with store.transaction():
        _insert(store, SYSTEMUSER, {
            "systemuserid": user_ids.tolist(),
            "createdon": _iso(created),
            "modifiedon": _iso(created),
            "firstname": _text(owners["first_name"]),
            "lastname": _text(owners["last_name"]),
            "fullname": _text(owners["first_name"] + " " + owners["last_name"]),
            "internalemailaddress": _text(owners["email"]),
            "domainname": _text(owners["email"]),
            "isdisabled": [0] * len(owners),
            "azureactivedirectoryobjectid": guids(owners["owner_id"], "aad", seed).tolist(),
        }, store.next_versions(len(owners)))
    progress(f"dynamics: {len(owners)} systemusers")

    companies = universe.companies()
    account_of = np.full(len(companies), None, dtype=object)
    in_dyn = companies["in_dynamics"].to_numpy()
    accounts = companies[in_dyn]
    account_of[in_dyn] = guids(accounts["company_id"], "account", seed)
    currency_of = np.where(companies["country_code"].isin(_EUR_COUNTRIES).to_numpy(), CURRENCIES["EUR"][0],
                           CURRENCIES["USD"][0])
    company_name = companies["name"].to_numpy(dtype=object)
    with store.transaction():
        _insert(store, ACCOUNT, {
            "accountid": account_of[in_dyn].tolist(),
            "createdon": _iso(accounts["created_at"]),
            "modifiedon": _iso(accounts["modified_at"]),
            "name": _text(accounts["name"]),
            "accountnumber": [f"ACC-{i:07d}" for i in accounts["company_id"].tolist()],
            "websiteurl": _text(accounts["website"]),
            "telephone1": _text(accounts["phone"]),
            "numberofemployees": _text(accounts["num_employees"]),
            "revenue": _text(accounts["annual_revenue"]),
            "address1_city": _text(accounts["city"]),
            "address1_stateorprovince": _text(accounts["state_text"]),
            "address1_country": _text(accounts["country_text"]),
            "_ownerid_value": user_ids[accounts["owner_id"].to_numpy()].tolist(),
            "_transactioncurrencyid_value": currency_of[in_dyn].tolist(),
            "statecode": [0] * len(accounts),
            "statuscode": [1] * len(accounts),
        }, store.next_versions(len(accounts)))
    progress(f"dynamics: {len(accounts)} accounts")

    n_contacts = n_leads = n_opps = 0
    for chunk in universe.chunks():
        people = chunk.people.drop(columns=["email", "created_at", "modified_at"]).rename(
            columns={"company_id": "person_company_id"})
        recs = chunk.appearances[chunk.appearances["crm"] == "dynamics"].merge(people, on="person_id", how="left")
        recs = recs.drop(columns=["email_valid"]) if "email_valid" in recs else recs
        fullname = (recs["first_name"].fillna("") + " " + recs["last_name"].fillna("")).str.strip()
        is_contact = (recs["kind"] == "contact").to_numpy()
        rid = recs["record_id"].to_numpy(dtype=np.int64)
        owner = user_ids[recs["owner_id"].to_numpy()]
        account = _lookup(recs["company_id"], account_of)
        ids_c = guids(rid[is_contact], "contact", seed)
        c = recs[is_contact]
        inactive = _hash(rid[is_contact], 0xC0) < 0.04
        contacts = {
            "contactid": ids_c.tolist(),
            "createdon": _iso(c["created_at"]),
            "modifiedon": _iso(c["modified_at"]),
            "firstname": _text(c["first_name"]),
            "lastname": _text(c["last_name"]),
            "fullname": _text(fullname[is_contact]),
            "emailaddress1": _text(c["email"]),
            "telephone1": _text(c["phone"]),
            "jobtitle": _text(c["job_title"]),
            "address1_city": _text(c["city"]),
            "address1_stateorprovince": _text(c["state_text"]),
            "address1_country": _text(c["country_text"]),
            "_parentcustomerid_value": [a for a, m in zip(account, is_contact, strict=True) if m],
            "_parentcustomerid_target": np.where(c["company_id"].notna().to_numpy(), "account", None).tolist(),
            "_ownerid_value": owner[is_contact].tolist(),
            "statecode": inactive.astype(int).tolist(),
            "statuscode": np.where(inactive, 2, 1).tolist(),
        }
        is_lead = ~is_contact
        lead_rid = rid[is_lead]
        ld = recs[is_lead]
        # A lead next to a contact of the same person was qualified into that contact.
        contact_rid = lead_rid - lead_rid % 8 + 5
        qualified = np.isin(contact_rid, rid[is_contact])
        u = _hash(lead_rid, 0x1E)
        state = np.where(qualified, 1, np.where(u < 0.7, 0, 2))
        status = np.where(qualified, 3, np.where(u < 0.35, 1, np.where(u < 0.7, 2, 4 + ((u * 100) % 4).astype(int))))
        person_co = ld["person_company_id"].to_numpy(dtype="float64", na_value=np.nan)
        has_co = ~np.isnan(person_co)
        companyname = np.full(len(ld), None, dtype=object)
        companyname[has_co] = company_name[person_co[has_co].astype(np.int64)]
        lead_name = fullname[is_lead].to_numpy(dtype=object)
        leads = {
            "leadid": guids(lead_rid, "lead", seed).tolist(),
            "createdon": _iso(ld["created_at"]),
            "modifiedon": _iso(ld["modified_at"]),
            "subject": ["Enquiry from " + (co or n) for co, n in zip(companyname, lead_name, strict=True)],
            "firstname": _text(ld["first_name"]),
            "lastname": _text(ld["last_name"]),
            "fullname": lead_name.tolist(),
            "companyname": companyname.tolist(),
            "emailaddress1": _text(ld["email"]),
            "telephone1": _text(ld["phone"]),
            "jobtitle": _text(ld["job_title"]),
            "address1_city": _text(ld["city"]),
            "address1_stateorprovince": _text(ld["state_text"]),
            "address1_country": _text(ld["country_text"]),
            "leadsourcecode": (1 + (_hash(lead_rid, 0x50) * 10).astype(int)).tolist(),
            "_parentaccountid_value": [a for a, m in zip(account, is_lead, strict=True) if m],
            "_parentcontactid_value": np.where(qualified, guids(contact_rid, "contact", seed), None).tolist(),
            "_ownerid_value": owner[is_lead].tolist(),
            "statecode": state.tolist(),
            "statuscode": status.tolist(),
        }

        deals = chunk.deals[chunk.deals["in_dynamics"]]
        dc = chunk.deal_contacts
        primary = dc[dc["is_primary"] & dc["dynamics_record_id"].notna()]
        primary_contact = pd.Series(
            guids(primary["dynamics_record_id"].to_numpy(dtype=np.int64), "contact", seed),
            index=primary["deal_id"].to_numpy(),
        )
        parent_contact = deals["deal_id"].map(primary_contact)
        deal_account = _lookup(deals["company_id"], account_of)
        has_account = deals["company_id"].notna().to_numpy()
        stage = np.array([_SALESSTAGE.get((p, s), 3) for p, s in zip(deals["pipeline"], deals["stage"], strict=True)])
        won = deals["is_won"].to_numpy()
        lost = deals["is_closed"].to_numpy() & ~won
        did = deals["deal_id"].to_numpy(dtype=np.int64)
        ud = _hash(did, 0x0F)
        amount = _text(deals["amount"])
        close = _date(deals["close_date"])
        opps = {
            "opportunityid": guids(did, "opportunity", seed).tolist(),
            "createdon": _iso(deals["created_at"]),
            "modifiedon": _iso(deals["modified_at"]),
            "name": _text(deals["name"]),
            "description": _text(deals["description"]),
            "estimatedvalue": amount,
            "actualvalue": [a if w else None for a, w in zip(amount, won, strict=True)],
            "estimatedclosedate": close,
            "actualclosedate": [d if w or lo else None for d, w, lo in zip(close, won, lost, strict=True)],
            "closeprobability": np.where(won, 100, np.where(lost, 0, [_PROBABILITY[s] for s in stage])).tolist(),
            "salesstage": stage.tolist(),
            "stepname": [_STEPNAME[s] for s in stage.tolist()],
            "opportunityratingcode": (1 + (ud * 3).astype(int)).tolist(),
            "_customerid_value": np.where(has_account, np.array(deal_account, dtype=object),
                                          parent_contact.to_numpy(dtype=object)).tolist(),
            "_customerid_target": np.where(has_account, "account",
                                           np.where(parent_contact.notna().to_numpy(), "contact", None)).tolist(),
            "_parentaccountid_value": deal_account,
            "_parentcontactid_value": parent_contact.astype(object).where(parent_contact.notna(), None).tolist(),
            "_ownerid_value": user_ids[deals["owner_id"].to_numpy()].tolist(),
            "_transactioncurrencyid_value": [CURRENCIES[c][0] for c in deals["currency"].tolist()],
            "statecode": np.where(won, 1, np.where(lost, 2, 0)).tolist(),
            "statuscode": np.where(won, 3, np.where(lost, np.where(ud < 0.5, 4, 5),
                                                    np.where(ud < 0.1, 2, 1))).tolist(),
        }
        with store.transaction():
            _insert(store, CONTACT, contacts, store.next_versions(len(ids_c)))
            _insert(store, LEAD, leads, store.next_versions(len(lead_rid)))
            _insert(store, OPPORTUNITY, opps, store.next_versions(len(did)))
        n_contacts += len(ids_c)
        n_leads += len(lead_rid)
        n_opps += len(did)
        progress(f"dynamics: {n_contacts} contacts, {n_leads} leads, {n_opps} opportunities")
    store.create_indexes()
    store.db.execute("ANALYZE")
    return dict(zip(owners["email"].tolist(), user_ids.tolist(), strict=True))

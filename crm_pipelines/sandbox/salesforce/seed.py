"""Salesforce's share of the universe, written into a fresh org in bulk (vectorised, chunk by chunk).

Ids are a pure function of the universe: a Lead or Contact is ``<prefix> + base62(record_id)``, an Account
``001 + base62(company_id)``, an Opportunity ``006 + base62(deal_id)``; roles and tasks are numbered in
universe order. Indexes are built once after the rows are in, which is several times faster than
maintaining them row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from crm_pipelines.sandbox.salesforce.catalog import COUNTRIES, LEAD_SOURCES, RECORD_TYPES, STAGES, STATES
from crm_pipelines.sandbox.salesforce.ids import make_id, make_ids
from crm_pipelines.sandbox.salesforce.store import SalesforceStore
from crm_pipelines.sandbox.salesforce.values import sf_dates, sf_datetimes
from crm_pipelines.sandbox.universe import Universe

ORG_CREATED = "2019-01-01T00:00:00.000+0000"
_OPP_TYPE = {"newbusiness": "New Customer", "existingbusiness": "Existing Customer - Upgrade"}
_OPEN_LEAD_STATUSES = np.array(["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"], dtype=object)
_LEAD_SOURCES = np.array(LEAD_SOURCES, dtype=object)
_ROLES = np.array(["Decision Maker", "Evaluator", "Influencer", "Technical Buyer", "Economic Buyer"], dtype=object)
_TASK_SUBJECTS = np.array(["Call", "Send proposal", "Follow up", "Demo", "Send contract"], dtype=object)


def _obj(series: pd.Series) -> np.ndarray:
    """A column as Python objects with None for missing (what sqlite3 binds)."""
    out = series.astype(object).to_numpy(copy=True)
    out[pd.isna(series).to_numpy()] = None
    return out


def _ids(prefix: str, series: pd.Series) -> np.ndarray:
    """Ids for a nullable integer column; None where the universe has no record."""
    mask = series.notna().to_numpy()
    out = np.full(len(series), None, dtype=object)
    if mask.any():
        out[mask] = make_ids(prefix, series[mask].astype("int64").to_numpy()).astype(object)
    return out


def _insert(store: SalesforceStore, table: str, frame: dict[str, Any], n: int) -> None:
    if n == 0:
        return
    columns = list(frame)
    arrays = []
    for v in frame.values():
        if isinstance(v, pd.Series):
            arrays.append(_obj(v))
        elif isinstance(v, np.ndarray):
            arrays.append(v.astype(object))
        else:  # one value for every row
            arrays.append(np.full(n, v, dtype=object))
    store.insert_rows(table, columns, zip(*arrays, strict=True))


def _audit(created: pd.Series, modified: pd.Series, owner_ids: np.ndarray, owned: bool = True) -> dict[str, Any]:
    mod = sf_datetimes(modified)
    out: dict[str, Any] = {
        "IsDeleted": 0, "CreatedDate": sf_datetimes(created), "CreatedById": owner_ids,
        "LastModifiedDate": mod, "LastModifiedById": owner_ids, "SystemModstamp": mod,
    }
    if owned:
        out["OwnerId"] = owner_ids
    return out


def record_type_id(key: str) -> str:
    return make_id("012", RECORD_TYPES[key].sequence)


def seed_org(store: SalesforceStore, universe: Universe, progress: Callable[[str], Any] = lambda _: None) -> str:
    """Fill the (wiped) org; returns the id of the User the API acts as."""
    owners = universe.owners()
    user_ids = make_ids("005", owners["owner_id"].to_numpy()).astype(object)
    user_of = pd.Series(user_ids, index=owners["owner_id"].to_numpy())
    api_user = str(user_ids[0])
    with store.transaction():
        n = len(owners)
        first, last = _obj(owners["first_name"]), _obj(owners["last_name"])
        _insert(store, "User", {
            "Id": user_ids, "IsDeleted": 0, "CreatedDate": ORG_CREATED, "CreatedById": api_user,
            "LastModifiedDate": ORG_CREATED, "LastModifiedById": api_user, "SystemModstamp": ORG_CREATED,
            "Username": _obj(owners["email"]), "Email": _obj(owners["email"]), "FirstName": first, "LastName": last,
            "Name": (owners["first_name"] + " " + owners["last_name"]).astype(object).to_numpy(),
            "Alias": np.array([(f[:1] + la[:4]).lower() for f, la in zip(first, last, strict=True)], dtype=object),
            "IsActive": 1, "TimeZoneSidKey": "Europe/Berlin", "UserType": "Standard",
        }, n)
        rts = list(RECORD_TYPES.values())
        _insert(store, "RecordType", {
            "Id": np.array([make_id("012", r.sequence) for r in rts], dtype=object), "IsDeleted": 0,
            "CreatedDate": ORG_CREATED, "CreatedById": api_user, "LastModifiedDate": ORG_CREATED,
            "LastModifiedById": api_user, "SystemModstamp": ORG_CREATED,
            "Name": np.array([r.name for r in rts], dtype=object),
            "DeveloperName": np.array([r.developer_name for r in rts], dtype=object),
            "SobjectType": "Opportunity", "IsActive": 1,
            "Description": np.array([f"{r.name} sales process" for r in rts], dtype=object),
        }, len(rts))
        stages = list(STAGES.values())
        _insert(store, "OpportunityStage", {
            "Id": np.array([make_id("01J", s.sort) for s in stages], dtype=object), "IsDeleted": 0,
            "CreatedDate": ORG_CREATED, "CreatedById": api_user, "LastModifiedDate": ORG_CREATED,
            "LastModifiedById": api_user, "SystemModstamp": ORG_CREATED,
            "ApiName": np.array([s.api_name for s in stages], dtype=object),
            "MasterLabel": np.array([s.api_name for s in stages], dtype=object), "IsActive": 1,
            "IsClosed": np.array([int(s.closed) for s in stages], dtype=object),
            "IsWon": np.array([int(s.won) for s in stages], dtype=object),
            "DefaultProbability": np.array([float(s.probability) for s in stages], dtype=object),
            "ForecastCategoryName": np.array([s.forecast for s in stages], dtype=object),
            "SortOrder": np.array([s.sort for s in stages], dtype=object),
        }, len(stages))

    companies = universe.companies()
    company_name = companies.set_index("company_id")["name"]
    accounts = companies[companies["in_salesforce"]]
    account_owner = user_of.reindex(accounts["owner_id"].to_numpy()).to_numpy()
    with store.transaction():
        _insert(store, "Account", {
            "Id": make_ids("001", accounts["company_id"].to_numpy()).astype(object),
            **_audit(accounts["created_at"], accounts["modified_at"], account_owner),
            "Name": _obj(accounts["name"]), "Website": _obj(accounts["website"]), "Phone": _obj(accounts["phone"]),
            "Industry": _obj(accounts["industry"]), "NumberOfEmployees": _obj(accounts["num_employees"]),
            "AnnualRevenue": _obj(accounts["annual_revenue"]), "BillingCity": _obj(accounts["city"]),
            "BillingState": _obj(accounts["state_text"]), "BillingCountry": _obj(accounts["country_text"]),
            "Type": np.where(accounts["company_id"].to_numpy() % 3 == 0, "Customer", "Prospect").astype(object),
            **dict(zip(("BillingCountryCode", "BillingStateCode"), _codes(accounts), strict=True)),
        }, len(accounts))
    progress(f"salesforce: {len(accounts)} accounts")

    n_people = n_opps = n_roles = n_tasks = 0
    for chunk in universe.chunks():
        recs = chunk.appearances[chunk.appearances["crm"] == "salesforce"].merge(
            chunk.people.drop(columns=["email", "created_at", "modified_at", "email_valid"]).rename(
                columns={"company_id": "person_company_id"}),
            on="person_id", how="left",
        )
        owner = user_of.reindex(recs["owner_id"].to_numpy()).to_numpy()
        rid = recs["record_id"].astype("int64").to_numpy()
        common = {
            **_audit(recs["created_at"], recs["modified_at"], owner),
            "FirstName": _obj(recs["first_name"]), "LastName": _obj(recs["last_name"]),
            "Name": _obj(recs["first_name"].fillna("") + " " + recs["last_name"]).astype(str),
            "Email": _obj(recs["email"]), "Phone": _obj(recs["phone"]), "Title": _obj(recs["job_title"].str[:128]),
            "LeadSource": _LEAD_SOURCES[rid % len(_LEAD_SOURCES)], "HasOptedOutOfEmail": 0,
        }
        common["Name"] = np.char.strip(common["Name"].astype(str)).astype(object)
        contact = (recs["kind"] == "Contact").to_numpy()
        lead = ~contact
        account_ids = _ids("001", recs["company_id"])
        c = {k: (v[contact] if isinstance(v, np.ndarray) else v) for k, v in common.items()}
        c.update(Id=make_ids("003", rid[contact]).astype(object), AccountId=account_ids[contact],
                 MailingCity=_obj(recs["city"])[contact], MailingState=_obj(recs["state_text"])[contact],
                 MailingCountry=_obj(recs["country_text"])[contact])
        country_codes, state_codes = _codes(recs)
        c.update(MailingCountryCode=country_codes[contact], MailingStateCode=state_codes[contact])
        leads = recs[lead]
        converted = leads["converted_to_contact"].to_numpy()
        status = _lead_status(leads["record_id"].to_numpy(), converted)
        company = leads["person_company_id"].map(company_name)
        ld = {k: (v[lead] if isinstance(v, np.ndarray) else v) for k, v in common.items()}
        ld.update(Id=make_ids("00Q", rid[lead]).astype(object),
                  Company=_obj(company.fillna("[not provided]")), City=_obj(leads["city"]),
                  State=_obj(leads["state_text"]), Country=_obj(leads["country_text"]), Status=status,
                  CountryCode=country_codes[lead], StateCode=state_codes[lead],
                  IsConverted=converted.astype(int).astype(object),
                  ConvertedContactId=_ids("003", leads["converted_contact_record_id"]),
                  ConvertedAccountId=np.where(converted, account_ids[lead], None),
                  ConvertedDate=np.where(converted, sf_dates(leads["modified_at"]), None))

        deals = chunk.deals[chunk.deals["in_salesforce"]]
        stage_names = np.array([RECORD_TYPES[p].universe_stages[s] for p, s in
                                zip(deals["pipeline"], deals["stage"], strict=True)], dtype=object)
        stage_info = [STAGES[s] for s in stage_names]
        probability = np.array([float(s.probability) for s in stage_info], dtype=object)
        amount = _obj(deals["amount"])
        expected = np.array([None if a is None else round(a * p / 100, 2) for a, p in
                             zip(amount, probability, strict=True)], dtype=object)
        opp_ids = make_ids("006", deals["deal_id"].to_numpy()).astype(object)
        opp_of = pd.Series(opp_ids, index=deals["deal_id"].to_numpy())
        opp_owner = user_of.reindex(deals["owner_id"].to_numpy()).to_numpy()
        opp = {
            "Id": opp_ids, **_audit(deals["created_at"], deals["modified_at"], opp_owner),
            "AccountId": _ids("001", deals["company_id"]),
            "RecordTypeId": np.array([record_type_id(p) for p in deals["pipeline"]], dtype=object),
            "Name": _obj(deals["name"].str[:120]), "Description": _obj(deals["description"]),
            "StageName": stage_names, "Amount": amount, "Probability": probability, "ExpectedRevenue": expected,
            "CloseDate": sf_dates(deals["close_date"]), "Type": _obj(deals["deal_type"].map(_OPP_TYPE)),
            "IsClosed": np.array([int(s.closed) for s in stage_info], dtype=object),
            "IsWon": np.array([int(s.won) for s in stage_info], dtype=object),
            "ForecastCategoryName": np.array([s.forecast for s in stage_info], dtype=object),
        }
        dc = chunk.deal_contacts[chunk.deal_contacts["salesforce_record_id"].notna()
                                 & chunk.deal_contacts["deal_id"].isin(deals["deal_id"])]
        dc_deals = deals.set_index("deal_id").loc[dc["deal_id"].to_numpy()]
        role_owner = user_of.reindex(dc_deals["owner_id"].to_numpy()).to_numpy()
        seq = np.arange(n_roles, n_roles + len(dc))
        role = {
            "Id": make_ids("00K", seq).astype(object),
            **_audit(dc_deals["created_at"], dc_deals["modified_at"], role_owner, owned=False),
            "OpportunityId": opp_of.reindex(dc["deal_id"].to_numpy()).to_numpy(),
            "ContactId": _ids("003", dc["salesforce_record_id"]),
            "Role": _ROLES[seq % len(_ROLES)], "IsPrimary": dc["is_primary"].astype(int).astype(object).to_numpy(),
        }
        # One Task per primary contact role: the follow-up a rep logs on the deal (who = Contact, what = deal).
        primary = dc["is_primary"].to_numpy()
        tseq = np.arange(n_tasks, n_tasks + int(primary.sum()))
        closed = dc_deals["is_closed"].to_numpy()[primary]
        task = {
            "Id": make_ids("00T", tseq).astype(object),
            **_audit(dc_deals["created_at"][primary], dc_deals["modified_at"][primary], role_owner[primary]),
            "WhoId": role["ContactId"][primary], "WhatId": role["OpportunityId"][primary],
            "Subject": _TASK_SUBJECTS[tseq % len(_TASK_SUBJECTS)],
            "ActivityDate": sf_dates(dc_deals["close_date"][primary]),
            "Status": np.where(closed, "Completed", "Not Started").astype(object),
            "Priority": np.where(tseq % 4 == 0, "High", "Normal").astype(object),
            "IsClosed": closed.astype(int).astype(object), "Type": "Call",
        }
        with store.transaction():
            _insert(store, "Contact", c, int(contact.sum()))
            _insert(store, "Lead", ld, int(lead.sum()))
            _insert(store, "Opportunity", opp, len(deals))
            _insert(store, "OpportunityContactRole", role, len(dc))
            _insert(store, "Task", task, len(tseq))
        n_people += len(recs)
        n_opps += len(deals)
        n_roles += len(dc)
        n_tasks += len(tseq)
        progress(f"salesforce: {n_people} leads and contacts, {n_opps} opportunities")
    progress("salesforce: building indexes")
    store.create_tables(indexes=True)
    store.db.execute("ANALYZE")
    return api_user


def _codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(CountryCode, StateCode) from the universe's ISO truth, kept only where the org's picklists have them."""
    country = _obj(frame["country_code"].where(frame["country_code"].isin(list(COUNTRIES))))
    iso = frame["state_code"].astype("string")
    valid = iso.isin([f"{c}-{s}" for c, states in STATES.items() for s in states])
    state = _obj(iso.str.split("-").str[-1].where(valid))
    return country, state


def _lead_status(record_ids: np.ndarray, converted: np.ndarray) -> np.ndarray:
    status = _OPEN_LEAD_STATUSES[record_ids % len(_OPEN_LEAD_STATUSES)]
    return np.where(converted, "Closed - Converted", status).astype(object)

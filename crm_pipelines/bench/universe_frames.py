"""Mirror frames built from the sandbox universe, for tests and the benchmarks (never on the sync path).

The ids follow the sandboxes' own seeding (``sandbox/hubspot/seed.py``, ``sandbox/salesforce/seed.py``,
``sandbox/dynamics/seed.py``), so a frame here looks like what the extract layer mirrors from a sandbox
seeded with the same ``(seed, scale)``, without starting one. Only the fields the transforms read are
filled. It lives with the benchmarks because it reads both sides: the sandbox seeding and the transform frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipelines.sandbox.dynamics.seed import guids
from crm_pipelines.sandbox.hubspot.catalog import HUBSPOT_PIPELINES, OBJECT_TYPES
from crm_pipelines.sandbox.hubspot.seed import OWNER_ID_BASE
from crm_pipelines.sandbox.salesforce.catalog import RECORD_TYPES, STAGES
from crm_pipelines.sandbox.salesforce.ids import make_id, make_ids
from crm_pipelines.sandbox.universe import Universe
from crm_pipelines.transform.frames import Mirrors

HS_CONTACT = OBJECT_TYPES["contacts"].id_base + 1
HS_COMPANY = OBJECT_TYPES["companies"].id_base + 1
HS_DEAL = OBJECT_TYPES["deals"].id_base + 1
_SALESSTAGE = {"appointment": 0, "qualified": 0, "presentation": 1, "decision": 2, "contract": 3, "discovery": 0,
               "solution": 1, "proposal": 2, "negotiation": 3}
_OPP_TYPE = {"newbusiness": "New Customer", "existingbusiness": "Existing Customer - Upgrade"}
_STEPNAME = {0: "1-Qualify", 1: "2-Develop", 2: "3-Propose", 3: "4-Close"}


def _str(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object)).astype("string")


def _ns(series: pd.Series) -> np.ndarray:
    return pd.to_datetime(series, utc=True).astype("datetime64[ns, UTC]").to_numpy()


def _iso(series: pd.Series) -> pd.Series:
    s = pd.to_datetime(series, utc=True)
    return s.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").astype("string")


def _num_text(series: pd.Series) -> pd.Series:
    return series.astype("string")


def _hs_ids(base: int, ids: pd.Series) -> pd.Series:
    out = (base + ids.astype("Int64")).astype("string")
    return out


def _sf_ids(prefix: str, ids: pd.Series) -> pd.Series:
    mask = ids.notna().to_numpy()
    out = np.full(len(ids), None, dtype=object)
    if mask.any():
        out[mask] = make_ids(prefix, ids[mask].astype("int64").to_numpy()).astype(object)
    return _str(out)


def _dy_ids(ids: pd.Series, kind: str, seed: int) -> pd.Series:
    mask = ids.notna().to_numpy()
    out = np.full(len(ids), None, dtype=object)
    if mask.any():
        out[mask] = guids(ids[mask].astype("int64").to_numpy(), kind, seed)
    return _str(out)


def _mirror(ids: pd.Series, modified: pd.Series, fields: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ids.astype("string").to_numpy(), "modified_at": _ns(modified),
                          "deleted": np.zeros(len(ids), dtype=bool)})
    for name, values in fields.items():
        frame[name] = values.to_numpy() if isinstance(values, pd.Series) else values
    return frame


def universe_mirrors(universe: Universe) -> Mirrors:
    """All mirror frames of the three sandboxes seeded from ``universe``."""
    seed = universe.seed
    owners = universe.owners()
    companies = universe.companies()
    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}

    def add(crm: str, obj: str, frame: pd.DataFrame) -> None:
        frames.setdefault((crm, obj), []).append(frame)

    oid = owners["owner_id"]
    hs_owner = (OWNER_ID_BASE + oid).astype("string")
    sf_user = _sf_ids("005", oid)
    dy_user = _dy_ids(oid, "systemuser", seed)
    t0 = pd.Series(pd.Timestamp("2019-01-01", tz="UTC"), index=owners.index)
    add("hubspot", "owners", _mirror(hs_owner, t0, {"email": owners["email"], "firstName": owners["first_name"],
                                                    "lastName": owners["last_name"]}))
    add("salesforce", "User", _mirror(sf_user, t0, {"Email": owners["email"]}))
    add("dynamics", "systemusers", _mirror(dy_user, t0, {"internalemailaddress": owners["email"]}))
    hs_owner_of, sf_user_of, dy_user_of = (s.to_numpy(dtype=object) for s in (hs_owner, sf_user, dy_user))

    rows = []
    for order, p in enumerate(HUBSPOT_PIPELINES.values()):
        for i, (key, (sid, label, prob)) in enumerate(p["stages"].items()):
            rows.append({"pipeline_id": p["id"], "pipeline_label": p["label"], "stage_id": sid, "stage_label": label,
                         "display_order": str(i), "probability": prob,
                         "is_closed": key in ("won", "lost"), "is_won": key == "won", "pipeline_order": order})
    pipes = pd.DataFrame(rows)
    add("hubspot", "pipelines", _mirror(pipes["pipeline_id"] + ":" + pipes["stage_id"],
                                        pd.Series(pd.Timestamp("2021-03-01", tz="UTC"), index=pipes.index),
                                        {c: pipes[c] for c in pipes.columns if c != "pipeline_order"}))
    stages = pd.DataFrame([{"ApiName": s.api_name, "MasterLabel": s.api_name, "IsClosed": s.closed, "IsWon": s.won,
                            "SortOrder": s.sort} for s in STAGES.values()])
    add("salesforce", "OpportunityStage", _mirror(_sf_ids("01J", stages["SortOrder"]),
                                                  pd.Series(pd.Timestamp("2019-01-01", tz="UTC"), index=stages.index),
                                                  {c: stages[c] for c in stages.columns}))
    rts = pd.DataFrame([{"Id": make_id("012", r.sequence), "Name": r.name, "DeveloperName": r.developer_name,
                         "SobjectType": "Opportunity"} for r in RECORD_TYPES.values()])
    add("salesforce", "RecordType", _mirror(rts["Id"], pd.Series(pd.Timestamp("2019-01-01", tz="UTC"),
                                                                 index=rts.index),
                                            {c: rts[c] for c in rts.columns}))

    # companies
    cid = companies["company_id"]
    owner_idx = companies["owner_id"].to_numpy()
    hs = companies["in_hubspot"].to_numpy()
    hs_company = _hs_ids(HS_COMPANY, cid)
    c = companies[hs]
    add("hubspot", "companies", _mirror(hs_company[hs], c["modified_at"], {
        "name": c["name"], "domain": c["domain"], "website": c["website"], "city": c["city"],
        "state": c["state_text"], "country": c["country_text"], "hubspot_owner_id": hs_owner_of[owner_idx[hs]],
        "createdate": _iso(c["created_at"]), "numberofemployees": _num_text(c["num_employees"]),
    }))
    sf = companies["in_salesforce"].to_numpy()
    account = _sf_ids("001", cid)
    c = companies[sf]
    add("salesforce", "Account", _mirror(account[sf], c["modified_at"], {
        "Name": c["name"], "Website": c["website"], "BillingCountry": c["country_text"],
        "BillingState": c["state_text"], "OwnerId": sf_user_of[owner_idx[sf]], "CreatedDate": _iso(c["created_at"]),
    }))
    dy = companies["in_dynamics"].to_numpy()
    dy_account = pd.Series(pd.NA, index=companies.index, dtype="string")
    dy_account[dy] = _dy_ids(cid[dy], "account", seed).to_numpy()
    c = companies[dy]
    add("dynamics", "accounts", _mirror(dy_account[dy], c["modified_at"], {
        "name": c["name"], "websiteurl": c["website"], "address1_country": c["country_text"],
        "address1_stateorprovince": c["state_text"], "_ownerid_value": dy_user_of[owner_idx[dy]],
        "createdon": _iso(c["created_at"]),
    }))
    company_name = companies["name"]
    account_np = account.to_numpy(dtype=object)
    hs_company_np = hs_company.to_numpy(dtype=object)
    dy_account_np = dy_account.to_numpy(dtype=object)

    hs_pipe = {k: p["id"] for k, p in HUBSPOT_PIPELINES.items()}
    hs_stage = {(k, s): v[0] for k, p in HUBSPOT_PIPELINES.items() for s, v in p["stages"].items()}
    for ch in universe.chunks():
        ap = ch.appearances.merge(ch.people.drop(columns=["email", "created_at", "modified_at", "company_id"]),
                                  on="person_id", how="left")
        has_co = ap["company_id"].notna().to_numpy()
        co_idx = ap["company_id"].fillna(0).astype("int64").to_numpy()
        owner_i = ap["owner_id"].to_numpy()
        rid = ap["record_id"]
        for crm, kind in (("hubspot", "contact"), ("salesforce", "Contact"), ("salesforce", "Lead"),
                          ("dynamics", "contact"), ("dynamics", "lead")):
            m = ((ap["crm"] == crm) & (ap["kind"] == kind)).to_numpy()
            r = ap[m]
            co = np.where(has_co[m], 0, 1)  # 0 where the record has a company
            if crm == "hubspot":
                add(crm, "contacts", _mirror(_hs_ids(HS_CONTACT, rid[m]), r["modified_at"], {
                    "email": r["email"], "firstname": r["first_name"], "lastname": r["last_name"],
                    "phone": r["phone"], "city": r["city"], "state": r["state_text"], "country": r["country_text"],
                    "lifecyclestage": r["lifecycle_stage"], "hubspot_owner_id": hs_owner_of[owner_i[m]],
                    "createdate": _iso(r["created_at"]),
                    "company": np.where(co == 0, company_name.to_numpy(dtype=object)[co_idx[m]], None),
                }))
                pairs = pd.DataFrame({"from_id": _hs_ids(HS_CONTACT, rid[m]).to_numpy(),
                                      "to_id": hs_company_np[co_idx[m]]})[co == 0]
                add(crm, "associations", _assoc("contacts", "companies", pairs, 279))
            elif crm == "salesforce":
                ids = _sf_ids("003" if kind == "Contact" else "00Q", rid[m])
                fields = {"Email": r["email"], "FirstName": r["first_name"], "LastName": r["last_name"],
                          "Phone": r["phone"], "OwnerId": sf_user_of[owner_i[m]], "CreatedDate": _iso(r["created_at"])}
                acc = np.where(co == 0, account_np[co_idx[m]], None)
                if kind == "Contact":
                    fields |= {"AccountId": acc, "MailingCountry": r["country_text"], "MailingState": r["state_text"]}
                    add(crm, "Contact", _mirror(ids, r["modified_at"], fields))
                else:
                    conv = r["converted_to_contact"].to_numpy()
                    fields |= {"Company": pd.Series(np.where(co == 0, company_name.to_numpy(dtype=object)[co_idx[m]],
                                                             "[not provided]")),
                               "Country": r["country_text"], "State": r["state_text"], "IsConverted": conv,
                               "ConvertedContactId": _sf_ids("003", r["converted_contact_record_id"]),
                               "ConvertedAccountId": np.where(conv, acc, None)}
                    add(crm, "Lead", _mirror(ids, r["modified_at"], fields))
            else:
                ids = _dy_ids(rid[m], kind, seed)
                fields = {"emailaddress1": r["email"], "firstname": r["first_name"], "lastname": r["last_name"],
                          "address1_country": r["country_text"], "address1_stateorprovince": r["state_text"],
                          "_ownerid_value": dy_user_of[owner_i[m]], "createdon": _iso(r["created_at"])}
                acc = np.where(co == 0, dy_account_np[co_idx[m]], None)
                if kind == "contact":
                    fields["_parentcustomerid_value"] = acc
                    add(crm, "contacts", _mirror(ids, r["modified_at"], fields))
                else:
                    fields["_parentaccountid_value"] = acc
                    fields["companyname"] = np.where(co == 0, company_name.to_numpy(dtype=object)[co_idx[m]], None)
                    add(crm, "leads", _mirror(ids, r["modified_at"], fields))

        de, dc = ch.deals, ch.deal_contacts
        d_has_co = de["company_id"].notna().to_numpy()
        d_co = de["company_id"].fillna(0).astype("int64").to_numpy()
        d_owner = de["owner_id"].to_numpy()
        m = de["in_hubspot"].to_numpy()
        d = de[m]
        d_ids = _hs_ids(HS_DEAL, d["deal_id"])
        add("hubspot", "deals", _mirror(d_ids, d["modified_at"], {
            "dealname": d["name"], "amount": _num_text(d["amount"]), "pipeline": d["pipeline"].map(hs_pipe),
            "dealstage": pd.Series([hs_stage[k] for k in zip(d["pipeline"], d["stage"], strict=True)]),
            "closedate": _iso(d["close_date"]), "createdate": _iso(d["created_at"]),
            "dealtype": d["deal_type"], "description": d["description"],
            "hubspot_owner_id": hs_owner_of[d_owner[m]],
        }))
        x = dc[dc["hubspot_record_id"].notna()]
        add("hubspot", "associations", _assoc("deals", "contacts", pd.DataFrame({
            "from_id": _hs_ids(HS_DEAL, x["deal_id"]).to_numpy(),
            "to_id": _hs_ids(HS_CONTACT, x["hubspot_record_id"]).to_numpy()}), 3))
        add("hubspot", "associations", _assoc("deals", "companies", pd.DataFrame({
            "from_id": d_ids.to_numpy(), "to_id": hs_company_np[d_co[m]]})[d_has_co[m]], 341))
        m = de["in_salesforce"].to_numpy()
        d = de[m]
        stage = pd.Series([RECORD_TYPES[p].universe_stages[s] for p, s in zip(d["pipeline"], d["stage"], strict=True)])
        opp = _sf_ids("006", d["deal_id"])
        add("salesforce", "Opportunity", _mirror(opp, d["modified_at"], {
            "Name": d["name"].str[:120], "StageName": stage, "Amount": d["amount"].astype(object),
            "CloseDate": d["close_date"].dt.strftime("%Y-%m-%d"),
            "AccountId": np.where(d_has_co[m], account_np[d_co[m]], None),
            "RecordTypeId": pd.Series([make_id("012", RECORD_TYPES[p].sequence) for p in d["pipeline"]]),
            "IsClosed": d["is_closed"], "IsWon": d["is_won"], "CreatedDate": _iso(d["created_at"]),
            "Type": d["deal_type"].map(_OPP_TYPE), "Description": d["description"], "OwnerId": sf_user_of[d_owner[m]],
        }))
        x = dc[dc["salesforce_record_id"].notna()]
        seq = pd.Series(np.arange(len(x)) + x["deal_id"].min() * 4 if len(x) else [], dtype="Int64")
        add("salesforce", "OpportunityContactRole", _mirror(_sf_ids("00K", seq), pd.Series(
            pd.Timestamp("2024-01-01", tz="UTC"), index=range(len(x))), {
            "OpportunityId": _sf_ids("006", x["deal_id"]).to_numpy(),
            "ContactId": _sf_ids("003", x["salesforce_record_id"]).to_numpy(),
            "IsPrimary": x["is_primary"].to_numpy(), "Role": "Decision Maker"}))
        m = de["in_dynamics"].to_numpy()
        d = de[m]
        won, closed = d["is_won"].to_numpy(), d["is_closed"].to_numpy()
        sstage = np.array([_SALESSTAGE.get(s, 3) for s in d["stage"]])
        prim = dc[dc["is_primary"] & dc["dynamics_record_id"].notna()]
        parent = d["deal_id"].map(pd.Series(_dy_ids(prim["dynamics_record_id"], "contact", seed).to_numpy(),
                                            index=prim["deal_id"].to_numpy()))
        close = d["close_date"].dt.strftime("%Y-%m-%d")
        add("dynamics", "opportunities", _mirror(_dy_ids(d["deal_id"], "opportunity", seed), d["modified_at"], {
            "name": d["name"], "estimatedvalue": d["amount"].astype(object),
            "actualvalue": d["amount"].astype(object).where(won, None),
            "estimatedclosedate": close, "actualclosedate": close.where(closed),
            "statecode": np.where(won, 1, np.where(closed, 2, 0)), "salesstage": sstage,
            "stepname": [_STEPNAME[s] for s in sstage.tolist()],
            "_parentaccountid_value": np.where(d_has_co[m], dy_account_np[d_co[m]], None),
            "_parentcontactid_value": parent.astype(object).where(parent.notna(), None),
            "_ownerid_value": dy_user_of[d_owner[m]], "createdon": _iso(d["created_at"]),
        }))
    return Mirrors({k: pd.concat(v, ignore_index=True) for k, v in frames.items()})


def _assoc(frm: str, to: str, pairs: pd.DataFrame, type_id: int) -> pd.DataFrame:
    ids = (frm + ":" + pairs["from_id"].astype(str) + ":" + to + ":" + pairs["to_id"].astype(str) + ":"
           + str(type_id))
    n = len(pairs)
    return _mirror(pd.Series(ids.to_numpy()), pd.Series(pd.Timestamp("2024-01-01", tz="UTC"), index=range(n)), {
        "from_type": frm, "from_id": pairs["from_id"].astype("string").to_numpy(), "to_type": to,
        "to_id": pairs["to_id"].astype("string").to_numpy(), "type_id": str(type_id)})

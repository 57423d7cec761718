"""HubSpot's share of the universe, written into a fresh portal in bulk.

Ids are a pure function of the universe (company ``c`` is ``id_base + 1 + c``; contacts and deals are
numbered in universe order), so two sandboxes seeded alike hand out identical ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from crm_pipelines.sandbox.hubspot.catalog import ASSOCIATION_TYPES, HUBSPOT_PIPELINES, OBJECT_TYPES
from crm_pipelines.sandbox.hubspot.rollups import ROLLUP_PROPERTIES, DealFacts, figures, won_stages
from crm_pipelines.sandbox.hubspot.store import HubSpotStore
from crm_pipelines.sandbox.universe import Universe, UniverseChunk

OWNER_ID_BASE = 70_000_000
CONTACT_BASE = OBJECT_TYPES["contacts"].id_base + 1
DEAL_BASE = OBJECT_TYPES["deals"].id_base + 1
_TASK_SUBJECTS = np.array(["Follow-up call", "Send proposal", "Follow up", "Book a demo", "Send contract"])
_TASK_TYPES = np.array(["CALL", "EMAIL", "TODO"])
_CALL_TITLES = np.array(["Discovery call", "Pricing call", "Check-in", "Negotiation call"])
USER_ID_BASE = 9_000_000


def _ms(series: pd.Series) -> pd.Series:
    return ((pd.to_datetime(series, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")).astype("int64")


def _iso(series: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True)
    return (
        stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.")
        .str.cat((stamps.dt.microsecond // 1000).astype(str).str.zfill(3))
        .str.cat(pd.Series("Z", index=series.index))
        .where(stamps.notna(), None)
    )


def _text(series: pd.Series) -> pd.Series:
    """Property values are strings; absent values stay absent."""
    return series.astype("string").astype(object).where(series.notna(), None)


def _json_lines(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row, without its absent (null or NaN) properties."""
    names = list(frame.columns)
    # orjson writes each row straight from the frame's own string objects: DataFrame.to_json wrote the whole
    # chunk as one text, nulls included, which a regex then copied twice to strip them (the seed's memory peak)
    columns = [frame[n].astype(object).where(frame[n].notna(), None).tolist() for n in names]
    dumps = orjson.dumps
    rows = zip(*columns, strict=True)
    return [dumps({k: v for k, v in zip(names, row, strict=True) if v is not None}).decode() for row in rows]


def _records(ids: pd.Series, props: pd.DataFrame, source: pd.DataFrame, keys: list | None = None) -> Iterator[tuple]:
    """``store.insert_records`` rows: id, properties as JSON, created and modified (ms), unique key (None)."""
    return zip(ids.tolist(), _json_lines(props), _ms(source["created_at"]).tolist(),
               _ms(source["modified_at"]).tolist(), [None] * len(source) if keys is None else keys, strict=True)


def _pair_rows(frm: str, to: str, from_ids: pd.Series, to_ids: pd.Series, primary: bool) -> list[tuple]:
    default, primary_id = ASSOCIATION_TYPES[(frm, to)]
    back_default, back_primary = ASSOCIATION_TYPES[(to, frm)]
    pairs = list(zip(from_ids.tolist(), to_ids.tolist(), strict=True))
    rows = [(frm, f, to, t, default, "HUBSPOT_DEFINED") for f, t in pairs]
    rows += [(to, t, frm, f, back_default, "HUBSPOT_DEFINED") for f, t in pairs]
    if primary and primary_id is not None and back_primary is not None:
        rows += [(frm, f, to, t, primary_id, "HUBSPOT_DEFINED") for f, t in pairs]
        rows += [(to, t, frm, f, back_primary, "HUBSPOT_DEFINED") for f, t in pairs]
    return rows


def seed_portal(store: HubSpotStore, universe: Universe, progress: Callable[[str], None] = lambda _: None) -> None:
    store.drop_record_indexes()
    try:
        _seed(store, universe, progress)
    finally:
        store.create_record_indexes()  # also enforces unique contact emails over what was seeded


@dataclass(frozen=True)
class _Lookups:
    """What every chunk needs from the portal seeded before it (owners, companies, pipelines)."""

    owner_of: dict[int, str]
    company_hs_id: pd.Series  # universe company id -> HubSpot company id
    company_name: pd.Series  # universe company id -> name
    pipeline_ids: dict[str, str]
    stage_ids: dict[tuple[str, str], str]
    won: set[tuple[str, str]]


@dataclass
class _Tally:
    contacts: int = 0
    deals: int = 0
    max_contact: int = CONTACT_BASE
    max_deal: int = DEAL_BASE
    engagements: dict[str, int] = field(default_factory=lambda: {"tasks": 0, "calls": 0})


def _seed(store: HubSpotStore, universe: Universe, progress: Callable[[str], None]) -> None:
    owner_of = _seed_owners(store, universe)
    company_hs_id, company_name = _seed_companies(store, universe, owner_of, progress)
    lookups = _Lookups(
        owner_of,
        company_hs_id,
        company_name,
        pipeline_ids={key: p["id"] for key, p in HUBSPOT_PIPELINES.items()},
        stage_ids={
            (key, stage): sid for key, p in HUBSPOT_PIPELINES.items() for stage, (sid, _, _) in p["stages"].items()
        },
        won=won_stages(_pipeline(p, i) for i, p in enumerate(HUBSPOT_PIPELINES.values())),
    )
    tally = _Tally()
    for chunk in universe.chunks():
        _seed_chunk(store, chunk, lookups, tally)
        # unbound before the next chunk is generated, so that two chunks are never held at once
        del chunk
        progress(f"hubspot: {tally.contacts} contacts, {tally.deals} deals")
    with store.transaction():
        store.allocate_ids("contacts", tally.max_contact, 0)
        store.allocate_ids("deals", tally.max_deal, 0)
        for object_type in ("tasks", "calls"):
            store.allocate_ids(object_type, OBJECT_TYPES[object_type].id_base + tally.engagements[object_type], 0)
    progress(f"hubspot: {tally.engagements['tasks']} tasks, {tally.engagements['calls']} calls")


def _seed_owners(store: HubSpotStore, universe: Universe) -> dict[int, str]:
    """Owners and deal pipelines; returns {universe owner id: HubSpot owner id}."""
    owners = universe.owners()
    owner_ids = OWNER_ID_BASE + owners["owner_id"].astype("int64")
    with store.transaction():
        store.insert_owners(
            zip(
                owner_ids.tolist(),
                owners["email"].tolist(),
                owners["first_name"].tolist(),
                owners["last_name"].tolist(),
                (USER_ID_BASE + owners["owner_id"]).tolist(),
                [1_546_300_800_000] * len(owners),
                [1_546_300_800_000] * len(owners),
                strict=True,
            )
        )
        for order, (_, p) in enumerate(HUBSPOT_PIPELINES.items()):
            store.put_pipeline("deals", _pipeline(p, order))
    return dict(zip(owners["owner_id"].tolist(), owner_ids.astype(str).tolist(), strict=True))


def _seed_companies(
    store: HubSpotStore, universe: Universe, owner_of: dict[int, str], progress: Callable[[str], None]
) -> tuple[pd.Series, pd.Series]:
    """Companies; returns the two lookups the chunks need, so the company frames go before the chunks come."""
    companies = universe.companies()
    hs_companies = companies[companies["in_hubspot"]]
    company_id_of = OBJECT_TYPES["companies"].id_base + 1 + hs_companies["company_id"].astype("int64")
    company_hs_id = pd.Series(company_id_of.values, index=hs_companies["company_id"].values)
    company_props = pd.DataFrame(
        {
            "name": _text(hs_companies["name"]),
            "domain": _text(hs_companies["domain"]),
            "website": _text(hs_companies["website"]),
            "phone": _text(hs_companies["phone"]),
            "city": _text(hs_companies["city"]),
            "state": _text(hs_companies["state_text"]),
            "country": _text(hs_companies["country_text"]),
            "industry": _text(hs_companies["industry"]),
            "numberofemployees": _text(hs_companies["num_employees"]),
            "annualrevenue": _text(hs_companies["annual_revenue"]),
            "hubspot_owner_id": hs_companies["owner_id"].map(owner_of),
        }
    )
    with store.transaction():
        store.insert_records("companies", _records(company_id_of, company_props, hs_companies))
        store.allocate_ids("companies", OBJECT_TYPES["companies"].id_base + 1 + len(companies), 0)
    progress(f"hubspot: {len(hs_companies)} companies")
    return company_hs_id, companies.set_index("company_id")["name"]


def _seed_chunk(store: HubSpotStore, chunk: UniverseChunk, lookups: _Lookups, tally: _Tally) -> None:
    recs = chunk.appearances[chunk.appearances["crm"] == "hubspot"].merge(
        chunk.people.drop(columns=["email", "created_at", "modified_at", "company_id"]),
        on="person_id",
        how="left",
    )
    ids = CONTACT_BASE + recs["record_id"].astype("int64")
    has_company = recs["company_id"].notna()
    contact_props = _contact_props(recs, lookups)
    keys = recs["email"].str.strip().str.lower()
    keys = keys.astype(object).where(keys.notna() & (keys != ""), None)

    deals = chunk.deals[chunk.deals["in_hubspot"]]
    d_ids = pd.Series(DEAL_BASE + deals["deal_id"].astype("int64").values, index=deals["deal_id"].values)
    deal_props = _deal_props(deals, lookups)
    dc = chunk.deal_contacts[chunk.deal_contacts["hubspot_record_id"].notna()]
    dc = dc[dc["deal_id"].isin(d_ids.index)]
    # ROLL-1: HubSpot's calculated rollups, computed as the portal recomputes them after a change (a deal's
    # contacts are people of its own chunk)
    rollups = _rollups(ids, deals, deal_props, d_ids, dc, CONTACT_BASE, lookups.won)
    for name in ROLLUP_PROPERTIES:
        contact_props[name] = rollups[name]
    dco = deals[deals["company_id"].notna()]
    engagements = _engagements(dc, deals, d_ids, CONTACT_BASE, lookups.owner_of, tally.engagements)
    with store.transaction():
        store.insert_records("contacts", _records(ids, contact_props, recs, keys.tolist()))
        # each frame goes once written, so the next is built in its memory
        del contact_props, keys
        store.insert_records("deals", _records(d_ids, deal_props, deals))
        del deal_props
        pairs = (  # (from, to, from ids, to ids, primary)
            ("contacts", "companies", ids[has_company],
             recs.loc[has_company, "company_id"].map(lookups.company_hs_id), True),
            ("deals", "contacts", dc["deal_id"].map(d_ids), CONTACT_BASE + dc["hubspot_record_id"].astype("int64"),
             False),
            ("deals", "companies", dco["deal_id"].map(d_ids), dco["company_id"].map(lookups.company_hs_id), True),
        )  # fmt: skip
        for frm, to, from_ids, to_ids, primary in pairs:
            store.add_associations(_pair_rows(frm, to, from_ids, to_ids, primary=primary))
        for object_type, rows, links in engagements:
            store.insert_records(object_type, rows)
            for to, from_ids, to_ids in links:
                store.add_associations(_pair_rows(object_type, to, from_ids, to_ids, primary=False))
    tally.contacts += len(recs)
    tally.deals += len(deals)
    for object_type, rows, _ in engagements:
        tally.engagements[object_type] += len(rows)
    tally.max_contact = max(tally.max_contact, int(ids.max()) if len(ids) else 0)
    tally.max_deal = max(tally.max_deal, int(d_ids.max()) if len(d_ids) else 0)


def _contact_props(recs: pd.DataFrame, lookups: _Lookups) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": _text(recs["email"]),
            "firstname": _text(recs["first_name"]),
            "lastname": _text(recs["last_name"]),
            "phone": _text(recs["phone"]),
            "jobtitle": _text(recs["job_title"]),
            "company": recs["company_id"].map(lookups.company_name),
            "city": _text(recs["city"]),
            "state": _text(recs["state_text"]),
            "country": _text(recs["country_text"]),
            "lifecyclestage": _text(recs["lifecycle_stage"]),
            "hubspot_owner_id": recs["owner_id"].map(lookups.owner_of),
        }
    )


def _deal_props(deals: pd.DataFrame, lookups: _Lookups) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dealname": _text(deals["name"]),
            "amount": _text(deals["amount"]),
            "pipeline": deals["pipeline"].map(lookups.pipeline_ids),
            "dealstage": [lookups.stage_ids[(p, s)] for p, s in zip(deals["pipeline"], deals["stage"], strict=True)],
            "closedate": _iso(deals["close_date"]),
            "dealtype": _text(deals["deal_type"]),
            "description": _text(deals["description"]),
            "hubspot_owner_id": deals["owner_id"].map(lookups.owner_of),
            "deal_currency_code": _text(deals["currency"]),
        }
    )


def _rollups(ids: pd.Series, deals: pd.DataFrame, deal_props: pd.DataFrame, d_ids: pd.Series, dc: pd.DataFrame,
             contact_base: int, won: set[tuple[str, str]]) -> dict[str, list]:  # fmt: skip
    """The five rollup properties per contact of ``ids`` (None where it has no deal), by ``rollups.figures``."""
    created = _ms(deals["created_at"]).tolist()
    close_ms = _ms(deals["close_date"].fillna(pd.Timestamp(0, tz="UTC"))).tolist()
    close = [m if known else None for m, known in zip(close_ms, deals["close_date"].notna().tolist(), strict=True)]
    amounts = [None if pd.isna(a) else float(a) for a in deals["amount"].tolist()]
    stages = zip(deal_props["pipeline"].tolist(), deal_props["dealstage"].tolist(), strict=True)
    facts = {
        deal: DealFacts(int(hs_id), c, cl, a, stage in won)
        for deal, hs_id, c, cl, a, stage in zip(deals["deal_id"].tolist(), d_ids.tolist(), created, close, amounts,
                                                stages, strict=True)
    }  # fmt: skip
    per_contact: dict[int, dict[int, DealFacts]] = {}
    contacts = (contact_base + dc["hubspot_record_id"].astype("int64")).tolist()
    for contact, deal in zip(contacts, dc["deal_id"].tolist(), strict=True):
        per_contact.setdefault(contact, {})[deal] = facts[deal]
    empty = dict.fromkeys(ROLLUP_PROPERTIES)
    rows = [figures(list(per_contact[c].values())) if c in per_contact else empty for c in ids.tolist()]
    return {name: [r[name] for r in rows] for name in ROLLUP_PROPERTIES}


def _engagements(
    dc: pd.DataFrame, deals: pd.DataFrame, d_ids: pd.Series, contact_base: int, owner_of: dict, start: dict[str, int]
) -> list[tuple[str, list[tuple], list[tuple[str, pd.Series, pd.Series]]]]:
    """One engagement per deal's primary contact, with the deal's owner and times, associated with the contact
    and the deal (OPS-4 syncs them): a follow-up task on an open deal, a logged call on a closed one. Ids are
    numbered in universe order; ``start`` holds how many of each came before."""
    primary = dc[dc["is_primary"].astype(bool) & dc["deal_id"].isin(d_ids.index)]
    dd = deals.set_index("deal_id").loc[primary["deal_id"].to_numpy()]
    closed = dd["is_closed"].to_numpy(dtype=bool)
    out = []
    for object_type, mask in (("tasks", ~closed), ("calls", closed)):
        d = dd[mask]
        seq = np.arange(start[object_type], start[object_type] + len(d))
        owners = d["owner_id"].map(owner_of).to_numpy()
        if object_type == "tasks":
            props = pd.DataFrame({
                "hs_task_subject": _TASK_SUBJECTS[seq % len(_TASK_SUBJECTS)],
                "hs_timestamp": _iso(d["close_date"]).to_numpy(),
                "hs_task_status": np.where(seq % 3 == 0, "COMPLETED", "NOT_STARTED"),
                "hs_task_priority": np.where(seq % 4 == 0, "HIGH", "MEDIUM"),
                "hs_task_type": _TASK_TYPES[seq % len(_TASK_TYPES)],
                "hubspot_owner_id": owners,
            })
        else:
            props = pd.DataFrame({
                "hs_call_title": _CALL_TITLES[seq % len(_CALL_TITLES)],
                "hs_timestamp": _iso(d["close_date"]).to_numpy(),
                "hs_call_direction": np.where(seq % 3 == 0, "INBOUND", "OUTBOUND"),
                "hs_call_duration": ((seq % 29 + 1) * 60_000).astype(str),
                "hs_call_status": "COMPLETED",
                "hubspot_owner_id": owners,
            })
        ids = pd.Series(OBJECT_TYPES[object_type].id_base + 1 + seq)
        contacts = pd.Series(contact_base + primary["hubspot_record_id"].astype("int64").to_numpy()[mask])
        deal_ids = pd.Series(d_ids.reindex(primary["deal_id"].to_numpy()[mask]).to_numpy())
        rows = list(zip(ids.tolist(), _json_lines(props), _ms(d["created_at"]).tolist(),
                        _ms(d["modified_at"]).tolist(), [None] * len(d), strict=True))
        out.append((object_type, rows, [("contacts", ids, contacts), ("deals", ids, deal_ids)]))
    return out


def _pipeline(spec: dict, order: int) -> dict:
    # Stages of the portal's default pipeline carry createdAt = epoch 0 (FACTS §11).
    stamp = "1970-01-01T00:00:00Z" if spec["id"] == "default" else "2021-03-01T09:00:00.000Z"
    return {
        "id": spec["id"],
        "label": spec["label"],
        "displayOrder": order,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        "stages": [
            {
                "id": sid,
                "label": label,
                "displayOrder": i,
                "metadata": {"probability": prob, "isClosed": "true" if key in ("won", "lost") else "false"},
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for i, (key, (sid, label, prob)) in enumerate(spec["stages"].items())
        ],
    }

"""The records ``bench writeback`` works on in the sandboxes: the edits a person makes in each CRM's UI, and
the duplicates check, which reads every record back through the CRMs' own APIs.

Duplicates: the catalog names, per object, the field a record the sync created is found again by (its
``lookup_field``: the email of a contact or lead, an external-id field or key property of the others). Within
one CRM, records of the objects that pair with one HubSpot object (Salesforce Lead and Contact; Dataverse
contacts and leads) are one family. A record the sync made (live now, not there when the sandboxes were
seeded) that shares its normalized lookup value with another live record of its family is a duplicate: a
second record for one person, company or deal. The seeded data has duplicates of its own (the generator makes
them on purpose, CON-11); they are not counted unless the sync added one more.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines import catalog
from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.crm.errors import ApiError
from crm_pipelines.crm.salesforce.soql import Name, Names, soql
from crm_pipelines.settings import Settings
from crm_pipelines.state.schema import MIRROR_TABLES

EDIT_SHARE = 0.01
# a mapped field per object that syncs (transform/fields.py's defaults), edited as a person would
EDITED_FIELDS = {
    ("hubspot", "contacts"): "phone",
    ("hubspot", "companies"): "name",
    ("hubspot", "deals"): "description",
    ("salesforce", "Contact"): "Phone",
    ("salesforce", "Lead"): "Phone",
    ("salesforce", "Account"): "Name",
    ("salesforce", "Opportunity"): "Description",
    ("dynamics", "contacts"): "telephone1",
    ("dynamics", "leads"): "telephone1",
    ("dynamics", "accounts"): "name",
    ("dynamics", "opportunities"): "description",
}
_TEXT = {"phone": "+1 555 {n:07d}", "telephone1": "+1 555 {n:07d}", "Phone": "+1 555 {n:07d}"}


def live_ids(engine: Engine, crm: str, obj: str) -> list[str]:
    table = MIRROR_TABLES[(crm, obj)]
    with engine.connect() as conn:
        return [str(r) for (r,) in conn.execute(sa.select(table.c.id).where(sa.not_(table.c.deleted))
                                                .order_by(table.c.id))]  # fmt: skip


def seeded_ids(engine: Engine) -> dict[tuple[str, str], set[str]]:
    """Every record of each object that has a lookup field, as the bulk import read it (the seeded data)."""
    out = {}
    for o in catalog.objects():
        if o.lookup_field and (o.crm, o.name) in MIRROR_TABLES:
            table = MIRROR_TABLES[(o.crm, o.name)]
            with engine.connect() as conn:
                out[(o.crm, o.name)] = {str(r) for (r,) in conn.execute(sa.select(table.c.id))}
    return out


def _body(crm: str, field: str, n: int) -> dict[str, Any]:
    value = _TEXT.get(field, "Edited by the bench {n}").format(n=n)
    return {"properties": {field: value}} if crm == "hubspot" else {field: value}


def edit(info: dict, engine: Engine, seed: int) -> tuple[dict[str, int], int, int]:
    """``EDIT_SHARE`` of each synced object's live records (as the mirror holds them after the converged sync)
    edited in its sandbox's UI, one mapped field each; a record the CRM will not let a person edit (a converted
    Lead) is passed over for the next. Returns edits per ``crm.object``, the records they were drawn from, and
    the edits refused."""
    rng = np.random.default_rng(seed)
    edited: dict[str, int] = {}
    records = refused = 0
    for (crm, obj), field in EDITED_FIELDS.items():
        ids = live_ids(engine, crm, obj)
        records += len(ids)
        want = max(1, round(len(ids) * EDIT_SHARE)) if ids else 0
        done = 0
        with httpx.Client(base_url=f"{info[crm]['base_url']}/__sandbox__/ui/{obj}", verify=False, timeout=60) as ui:
            for record_id in rng.permutation(np.array(ids, dtype=object)):
                if done == want:
                    break
                answer = ui.patch(f"/{record_id}", json=_body(crm, field, done))
                if answer.status_code >= 400:
                    refused += 1
                    continue
                done += 1
        edited[f"{crm}.{obj}"] = done
    return edited, records, refused


# Dataverse's answer to a $select naming a column the table does not have
_NO_SUCH_COLUMN = "0x80060888"


async def _hubspot(client: Any, obj: str, field: str) -> list[tuple[str, Any]] | None:
    if field not in {p["name"] for p in await client.properties(obj)}:  # HubSpot ignores unknown properties
        return None
    return [(r["id"], (r.get("properties") or {}).get(field))
            async for page in client.iter_full(obj, [field]) for r in page]  # fmt: skip


async def _salesforce(client: Any, obj: str, field: str) -> list[tuple[str, Any]] | None:
    if (await client.describe(obj)).field(field) is None:
        return None
    query = soql("SELECT {fields} FROM {obj}", fields=Names(["Id", field]), obj=Name(obj))
    return [(r["Id"], r.get(field)) async for page in client.iter_query(query) for r in page]


async def _dynamics(client: Any, obj: str, field: str) -> list[tuple[str, Any]] | None:
    id_field = catalog.get("dynamics", obj).id_field
    try:
        return [(r[id_field], r.get(field)) async for page in client.iter_all(obj, [id_field, field]) for r in page]
    except ApiError as error:
        if error.code == _NO_SUCH_COLUMN:
            return None
        raise


_READERS = {"hubspot": _hubspot, "salesforce": _salesforce, "dynamics": _dynamics}


async def _read_identities(settings: Settings, crm: str) -> tuple[list[tuple[str, str, str, Any]], list[str]]:
    """(family, object, id, lookup value) of every live record of ``crm`` with a lookup field; and the objects
    whose lookup field the CRM lacks (nothing the sync made can be told by it: not checked)."""
    out, unchecked = [], []
    async with open_client(crm, settings, Secrets({})) as client:
        for o in catalog.objects(crm):
            if o.lookup_field and o.kind is catalog.Kind.RECORDS:
                rows = await _READERS[crm](client, o.name, o.lookup_field)
                if rows is None:
                    unchecked.append(f"{crm}.{o.name} (no {o.lookup_field})")
                    continue
                out += [(o.hubspot_object or o.name, o.name, str(i), v) for i, v in rows]
    return out, unchecked


def _normal(value: Any) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return text or None


def duplicates(settings: Settings, seeded: dict[tuple[str, str], set[str]]) -> tuple[dict[str, int], list[str]]:
    """Per ``crm.object``, the records the sync made that share their identity with another live record of
    their family (module doc), read through each CRM's API; and the objects that could not be checked."""
    found: Counter = Counter()
    unchecked: list[str] = []
    for crm in catalog.CRMS:
        rows, lacking = asyncio.run(_read_identities(settings, crm))
        unchecked += lacking
        shared = Counter((family, _normal(v)) for family, _o, _i, v in rows if _normal(v))
        for family, obj, record_id, value in rows:
            made = record_id not in seeded.get((crm, obj), set())
            if made and _normal(value) and shared[(family, _normal(value))] > 1:
                found[f"{crm}.{obj}"] += 1
    return dict(found), unchecked

"""The edits ``bench sync`` makes in the sandboxes' UIs while the daemon runs, and the poller that sees each
one arrive in the other CRMs through their APIs (formulas in ``bench/sync.py``).

Each edit changes one mapped field of one linked record (the link table after the converged sync: HubSpot's
record and one or two others) in the CRM whose turn it is; its value is expected in the other CRMs the record
is linked in, and nowhere else. A record is edited once, so no edit conflicts with another (CONF-1).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from sqlalchemy.engine import Engine

from crm_pipelines.bench.writeback_measure import CRMS, is_login
from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.crm.dynamics.entities import primary_key
from crm_pipelines.crm.dynamics.odata import one_of
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.soql import Name, Names, soql
from crm_pipelines.defs.writeback.create_value_inputs import DYNAMICS_ENTITY_SET, HUBSPOT_OBJECT
from crm_pipelines.settings import Settings
from crm_pipelines.state import links as link_store

POLL_S = 2.0  # how often the poller reads the pending values: the latencies' resolution
READ_MAX = 100  # ids per read (HubSpot's batch read and Dataverse's In() take 100; SOQL's IN list fits them)


@dataclass(frozen=True)
class Spec:
    """One mapped field of one kind of record, as each CRM names it (``transform/fields.py``'s defaults)."""

    kind: str  # contact, company, deal
    fields: dict[str, str]
    number: bool = False


# the rotation of fields, mixing the objects; each edit's source CRM rotates too (``CRMS``)
SPECS = (
    Spec("contact", {"hubspot": "firstname", "salesforce": "FirstName", "dynamics": "firstname"}),
    Spec("company", {"hubspot": "name", "salesforce": "Name", "dynamics": "name"}),
    Spec("deal", {"hubspot": "dealname", "salesforce": "Name", "dynamics": "name"}),
    Spec("contact", {"hubspot": "lastname", "salesforce": "LastName", "dynamics": "lastname"}),
    Spec("deal", {"hubspot": "amount", "salesforce": "Amount", "dynamics": "estimatedvalue"}, number=True),
    Spec("deal", {"hubspot": "description", "salesforce": "Description", "dynamics": "description"}),
)
SPECS_KINDS = tuple(dict.fromkeys(s.kind for s in SPECS))


Record = dict[str, tuple[str, str]]  # per CRM it is linked in: (API object, id) of one record


def _record(kind: str, link: Any) -> Record:
    out = {"hubspot": (HUBSPOT_OBJECT[kind], str(link.hubspot_id))}
    if isinstance(link.salesforce_id, str):
        out["salesforce"] = (str(link.salesforce_type), link.salesforce_id)
    if isinstance(link.dynamics_id, str):
        dynamics_type = str(link.dynamics_type)
        out["dynamics"] = (DYNAMICS_ENTITY_SET.get(dynamics_type, dynamics_type), link.dynamics_id)
    return out


def linked_records(engine: Engine, seed: int) -> dict[str, list[Record]]:
    """Per kind, the records linked in HubSpot and at least one other CRM after the converged sync (the link
    table: what the sync keeps in step), in a seeded random order."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind in SPECS_KINDS:
        # in the table's key order first: its physical order follows the set-up's writes, and the seed must pick
        # the same records from the same links
        frame = link_store.load(engine, kind=kind).dropna(subset=["hubspot_id"]).sort_values("hubspot_id")
        records = [r for r in (_record(kind, link) for link in frame.itertuples()) if len(r) > 1]
        out[kind] = [records[i] for i in rng.permutation(len(records))]
    return out


@dataclass
class Edit:
    n: int
    spec: Spec
    source: str
    record: Record
    value: Any
    edited_at: float  # monotonic, when the UI answered
    arrived_at: dict[str, float] = field(default_factory=dict)  # per target CRM, when a read first saw the value

    @property
    def targets(self) -> list[str]:
        """The CRMs the edited record is linked in besides its source: where the value is expected."""
        return [crm for crm in CRMS if crm != self.source and crm in self.record]

    def arrived(self) -> bool:
        return set(self.arrived_at) == set(self.targets)

    def seen(self, value: Any) -> bool:
        if self.spec.number:
            try:
                return value is not None and abs(float(value) - float(self.value)) < 0.005
            except (TypeError, ValueError):
                return False
        return value is not None and str(value).strip() == self.value


def _value(n: int, spec: Spec, tag: str) -> Any:
    return 10_000 + 37 * n if spec.number else f"Bench{tag} {n}"


def _body(crm: str, field_name: str, value: Any) -> dict[str, Any]:
    if crm == "hubspot":
        return {"properties": {field_name: str(value)}}
    return {field_name: value}


class Editor:
    """Makes the n-th edit: its source CRM and field by rotation, the next unedited record of that kind; a
    record the CRM will not let a person edit (a converted Lead, a record deleted since) is passed over."""

    def __init__(self, info: dict, records: dict[str, list[Record]], tag: str) -> None:
        self.info, self.records, self.tag = info, records, tag
        self.refused = 0

    async def edit(self, ui: httpx.AsyncClient, n: int) -> Edit | None:
        source, first = CRMS[n % len(CRMS)], n // len(CRMS)
        # the field whose turn it is, or the next one whose kind the source CRM still has linked records of
        # (deals, say, sync with one CRM only)
        for spec in (SPECS[(first + i) % len(SPECS)] for i in range(len(SPECS))):
            value = _value(n, spec, self.tag)
            while (record := self._next(spec.kind, source)) is not None:
                obj, record_id = record[source]
                url = f"{self.info[source]['base_url']}/__sandbox__/ui/{obj}/{record_id}"
                answer = await ui.patch(url, json=_body(source, spec.fields[source], value))
                if answer.status_code < 400:
                    return Edit(n, spec, source, record, value, time.monotonic())
                self.refused += 1
        return None  # nothing linked left to edit in the source CRM (a small scale): the edit is not made

    def _next(self, kind: str, source: str) -> Record | None:
        """The next unedited record of ``kind`` linked in ``source`` (taken off the list)."""
        pending = self.records[kind]
        at = next((i for i in range(len(pending) - 1, -1, -1) if source in pending[i]), None)
        return None if at is None else pending.pop(at)


async def _hubspot(client: Any, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict]:
    answer = await client.api.request("POST", f"/crm/v3/objects/{obj}/batch/read",
                                      endpoint="POST /crm/v3/objects/{type}/batch/read", idempotent=True,
                                      json={"properties": fields, "inputs": [{"id": i} for i in ids]})  # fmt: skip
    return {str(r["id"]): r.get("properties") or {} for r in answer.data.get("results", [])}


async def _salesforce(client: Any, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict]:
    query = soql("SELECT {fields} FROM {obj} WHERE Id IN {ids}", fields=Names(["Id", *fields]), obj=Name(obj),
                 ids=ids)  # fmt: skip
    return {str(r["Id"]): r async for page in client.iter_query(query) for r in page}


async def _dynamics(client: Any, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict]:
    key = primary_key(obj)
    pages = client.iter_pages(obj, [key, *fields], filter=one_of(key, ids))
    return {str(r[key]): r async for page in pages for r in page}


_READERS = {"hubspot": _hubspot, "salesforce": _salesforce, "dynamics": _dynamics}


class Poller:
    """Reads the values still on their way, per target CRM and object, one call per ``READ_MAX`` ids, through
    the CRMs' APIs (the sandboxes have no read path apart from the API: the calls are counted, ``meter``, and
    taken off what the sync is charged)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.meter = Meter()
        self.clients: dict[str, Any] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Poller:
        for crm in CRMS:
            self.clients[crm] = await self._stack.enter_async_context(
                open_client(crm, self.settings, Secrets({}), meter=self.meter)
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def poll(self, edits: list[Edit]) -> None:
        wanted: dict[tuple[str, str], dict[str, list[Edit]]] = defaultdict(lambda: defaultdict(list))
        for e in edits:
            for crm in e.targets:
                if crm not in e.arrived_at:
                    obj, record_id = e.record[crm]
                    wanted[(crm, obj)][record_id].append(e)
        for (crm, obj), by_id in wanted.items():
            ids = list(by_id)
            fields = sorted({e.spec.fields[crm] for es in by_id.values() for e in es})
            for start in range(0, len(ids), READ_MAX):
                rows = await _READERS[crm](self.clients[crm], obj, ids[start : start + READ_MAX], fields)
                now = time.monotonic()
                for record_id in ids[start : start + READ_MAX]:
                    for e in by_id[record_id]:
                        if e.seen(rows.get(record_id, {}).get(e.spec.fields[crm])):
                            e.arrived_at[crm] = now

    def calls(self) -> Counter:
        """The poller's own API calls per CRM (every attempt, as the sandboxes count them; logins apart)."""
        return Counter(c.connection for c in self.meter.calls if not is_login(c.endpoint))


async def edit_stream(
    info: dict,
    settings: Settings,
    records: dict[str, list[Record]],
    *,
    duration_s: float,
    every_s: float,
    drain_s: float,
    tag: str,
) -> tuple[list[Edit], Editor, Poller, float]:
    """One edit every ``every_s`` for ``duration_s``, the values polled as they go, then up to ``drain_s`` more
    for the stragglers. Returns the edits, the editor (refusals), the poller (its calls) and when the last
    edit's value arrived everywhere (monotonic; or when the drain gave up)."""
    editor, edits = Editor(info, records, tag), []
    started = time.monotonic()
    count = int(duration_s // every_s)
    async with Poller(settings) as poller, httpx.AsyncClient(verify=False, timeout=60) as ui:

        async def make_edits() -> None:
            for n in range(count):
                await asyncio.sleep(max(0.0, started + n * every_s - time.monotonic()))
                made = await editor.edit(ui, n)
                if made is not None:
                    edits.append(made)

        editing = asyncio.create_task(make_edits())
        deadline = started + count * every_s + drain_s
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            await poller.poll(edits)
            if editing.done() and all(e.arrived() for e in edits):
                break
        await editing
    return edits, editor, poller, time.monotonic()

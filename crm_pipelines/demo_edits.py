"""The demo's edits: a handful made in each sandbox's UI as a person would, one of them a conflict, and a
watcher that reads each value back through the target CRMs' APIs to time its arrival (issue 15).

Each edit changes one mapped field of one linked record (the link table after the first writes), so it is
expected in the other CRMs the record is linked in (HubSpot is the hub: an edit made in Salesforce reaches
Dynamics through HubSpot, a sync pass later). The conflict edits one contact's first name in HubSpot and in
Salesforce seconds apart, within the connection's ``conflict_window_minutes`` (CONF-1); the winner is read
back, not assumed: whichever value both CRMs hold afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.bench.sync_edits import SPECS, Edit, Poller, Record, Spec, linked_records
from crm_pipelines.settings import Settings

LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce", "dynamics": "Dynamics"}
FIRST_NAME, COMPANY_NAME, LAST_NAME = SPECS[0], SPECS[1], SPECS[3]
# (source CRM, field, value a person types): two edits in each sandbox, contacts and companies
PLAN: tuple[tuple[str, Spec, str], ...] = (
    ("hubspot", FIRST_NAME, "Ingrid"),
    ("hubspot", COMPANY_NAME, "Northwind Traders"),
    ("salesforce", LAST_NAME, "Lindqvist"),
    ("salesforce", COMPANY_NAME, "Fabrikam Robotics"),
    ("dynamics", FIRST_NAME, "Tobias"),
    ("dynamics", COMPANY_NAME, "Contoso Pharmaceuticals"),
)
CONFLICT_VALUES = {"hubspot": "Annika", "salesforce": "Annette"}
WATCH_EVERY_S = 1.0


@dataclass
class Conflict:
    """One contact's first name edited in HubSpot and in Salesforce: each side's edit, and their gap."""

    hubspot: Edit
    salesforce: Edit
    apart_s: float

    def winner(self) -> str | None:
        """The CRM whose value both hold now (its edit arrived in the other), None while undecided."""
        if self.hubspot.arrived():
            return "hubspot"
        if self.salesforce.arrived():
            return "salesforce"
        return None


def _body(crm: str, field_name: str, value: Any) -> dict[str, Any]:
    return {"properties": {field_name: str(value)}} if crm == "hubspot" else {field_name: value}


def _patch(ui: httpx.Client, info: dict, crm: str, record: Record, spec: Spec, value: str) -> bool:
    obj, record_id = record[crm]
    answer = ui.patch(f"{info[crm]['base_url']}/__sandbox__/ui/{obj}/{record_id}",
                      json=_body(crm, spec.fields[crm], value))  # fmt: skip
    return answer.status_code < 400  # a person cannot edit some records (a converted Lead): another is taken


def _written(engine: Engine) -> set[str]:
    """Ids of the records the first writes touched (as the record written, or a create's source)."""
    from crm_pipelines.state.schema import write_outbox

    with engine.connect() as conn:
        rows = conn.execute(sa.select(write_outbox.c.ref, write_outbox.c.target_id)).all()
    return {str(v) for row in rows for v in row if v is not None}


def _untouched_first(records: dict[str, list[Record]], written: set[str]) -> dict[str, list[Record]]:
    """Records none of whose sides the first writes touched, first: a value the sync just brought into one side
    is a change of that side within the conflict window, so a person's edit on the other side could lose to it
    (CONF-1/2) and never arrive; the others follow in case a small universe has too few untouched ones."""
    return {kind: sorted(rs, key=lambda r: any(i in written for _, i in r.values())) for kind, rs in records.items()}


def make_edits(info: dict, engine: Engine, seed: int) -> tuple[list[Edit], Conflict | None]:
    """The edits of ``PLAN`` and the conflict, made now through the sandboxes' UI endpoints."""
    records = _untouched_first(linked_records(engine, seed), _written(engine))
    edits: list[Edit] = []
    conflict = None
    with httpx.Client(verify=False, timeout=60) as ui:
        both = [r for r in records["contact"] if "salesforce" in r and r["salesforce"][0] == "Contact"]
        if both:  # the conflict first: its contact is not edited again below
            record = {crm: both[0][crm] for crm in ("hubspot", "salesforce")}
            records["contact"].remove(both[0])
            sides = {}
            for crm, value in CONFLICT_VALUES.items():
                if _patch(ui, info, crm, record, FIRST_NAME, value):
                    sides[crm] = Edit(len(edits) + len(sides), FIRST_NAME, crm, record, value, time.monotonic())
            if len(sides) == 2:
                conflict = Conflict(sides["hubspot"], sides["salesforce"],
                                    sides["salesforce"].edited_at - sides["hubspot"].edited_at)  # fmt: skip
        for source, spec, value in PLAN:
            pending = records[spec.kind]
            for record in [r for r in pending if source in r]:
                pending.remove(record)
                if _patch(ui, info, source, record, spec, value):
                    edits.append(Edit(len(edits), spec, source, record, value, time.monotonic()))
                    break
    return edits, conflict


def _unbudgeted(settings: Settings) -> Settings:
    """The settings without the connections' call limits: the watcher's reads are the demo's, not the sync's,
    and are not charged to its 24 h budget (OPS-2) nor shown in the usage the demo reports."""
    conns = settings.connections
    plain = {crm: getattr(conns, crm).model_copy(update={"api_call_limit": None}) for crm in LABELS}
    return settings.model_copy(update={"connections": conns.model_copy(update=plain)})


class ArrivalWatch:
    """Reads the values still on their way every ``WATCH_EVERY_S`` in a thread of its own (its own event loop
    and API clients, outside the sync's budget: the sandboxes offer no other read path), so each arrival is
    timed to the second while the sync passes run in the foreground."""

    def __init__(self, settings: Settings, edits: list[Edit], conflict: Conflict | None) -> None:
        self.settings = _unbudgeted(settings)
        self.edits = list(edits)
        self.conflict = conflict
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def _watched(self) -> list[Edit]:
        sides = [self.conflict.hubspot, self.conflict.salesforce] if self.conflict else []
        return [*self.edits, *sides]

    def done(self) -> bool:
        return all(e.arrived() for e in self.edits) and (self.conflict is None or self.conflict.winner() is not None)

    async def _run(self) -> None:
        async with Poller(self.settings) as poller:
            while not self._stop.is_set():
                pending = [e for e in self._watched() if not e.arrived()]
                if self.conflict is not None and self.conflict.winner() is not None:
                    pending = [e for e in pending if e not in (self.conflict.hubspot, self.conflict.salesforce)]
                try:
                    if pending:
                        await poller.poll(pending)
                except Exception as e:  # a failed read is retried; the last error is reported
                    self.error = f"{type(e).__name__}: {e}"
                await asyncio.sleep(WATCH_EVERY_S)

    def __enter__(self) -> ArrivalWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def settle(self, seconds: float = 2 * WATCH_EVERY_S + 1) -> None:
        """Give the watcher a last read or two after the sync's last write."""
        until = time.monotonic() + seconds
        while not self.done() and time.monotonic() < until:
            time.sleep(0.2)


def describe_edit(e: Edit) -> str:
    _, record_id = e.record[e.source]
    return f"{LABELS[e.source]} {e.spec.kind} {record_id}: {e.spec.fields[e.source]} → {e.value!r}"


def arrival_line(e: Edit) -> str:
    """``HubSpot contact 1234 firstname → 'Ingrid': Salesforce after 14.2 s, Dynamics after 14.3 s``."""
    got = [f"{LABELS[t]} after {e.arrived_at[t] - e.edited_at:.1f} s" if t in e.arrived_at
           else f"{LABELS[t]} NOT ARRIVED" for t in e.targets]  # fmt: skip
    return f"{describe_edit(e)}: {', '.join(got) or 'linked nowhere else'}"


def conflict_line(c: Conflict, settings: Settings) -> str:
    window = settings.sync.salesforce.conflict_window_minutes
    default = LABELS[settings.sync.salesforce.default_app]
    head = (f"contact {c.hubspot.record['hubspot'][1]} first name edited in HubSpot ({c.hubspot.value!r}) and "
            f"Salesforce ({c.salesforce.value!r}) {abs(c.apart_s):.1f} s apart")  # fmt: skip
    winner = c.winner()
    if winner is None:
        return f"{head}: NO WINNER yet (neither value reached the other CRM)"
    won = c.hubspot if winner == "hubspot" else c.salesforce
    loser = "salesforce" if winner == "hubspot" else "hubspot"
    rule = (f"within the {window:g}-minute window (CONF-1): {default}, the default app, wins (CONF-2)"
            if abs(c.apart_s) <= window * 60 else "further apart than the window: the later change wins (CONF-2)")
    return (f"{head}, {rule}. Winner: {LABELS[winner]}; {LABELS[loser]} now reads {won.value!r} "
            f"({won.arrived_at[loser] - won.edited_at:.1f} s after the edit)")

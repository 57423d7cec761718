"""Executing a target's stored plan (issue 13): its creates, field updates, closes, deletions and associations,
batched at the API's maximum, through the outbox (``state/outbox.py``), so that a run killed at any instant and
run again neither duplicates a record nor loses a change (DESIGN Invariants 1, 2 and 4).

A run, per target CRM:

1. Writes in doubt (recorded as sent by a run that died before recording their outcome): a create is looked
   for in the target by its lookup field (a contact role by its pair); found, it is confirmed as written;
   else it is sent again below, if the plan still has it. An update in doubt is sent again (the same value
   twice is one change).
2. In HubSpot, the pipelines and stages the plan's deals need (DEAL-3, ``pipeline_run.py``).
3. The plan's requests (``sync/write_requests.py``) less those already confirmed (the plan still lists them
   until an extract has read them back), less refused ones not yet due for another try (OPS-6).
4. Per operation (``OPERATIONS``: a record exists before anything refers to it) and object, a batch at a
   time: the batch is recorded as sent and committed, then sent; then, in one transaction, each record's
   outcome: confirmed ones set their baselines (CONF-5: the value written is not read back as a user's
   change) and the links creates make, refused ones keep the API's code and text and wait to be retried (at
   once when the record changed since). A Dataverse opportunity created to be closed is closed by its action
   first (DEAL-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines import catalog
from crm_pipelines.crm.errors import BudgetExhausted, WriteInDoubt
from crm_pipelines.crm.outcomes import WriteOutcome
from crm_pipelines.defs.writeback.create_value_inputs import (
    HUBSPOT_OBJECT,
    carried_values,
    update_forms_of,
    update_objects,
)
from crm_pipelines.defs.writeback.pipeline_run import ensure_pipelines
from crm_pipelines.defs.writeback.plan_inputs import calls_left
from crm_pipelines.defs.writeback.stored_plan import stored_plan
from crm_pipelines.settings import Settings
from crm_pipelines.state import baselines, outbox, unified
from crm_pipelines.state import links as link_store
from crm_pipelines.sync.calls import batch_size, fit_budget
from crm_pipelines.sync.deal_plan import STAGE_FIELD
from crm_pipelines.sync.write_requests import (
    CONTACT_ROLE,
    association_requests,
    create_requests,
    delete_requests,
    target_owners,
    update_requests,
)
from crm_pipelines.transform import links as link_rules

WRITTEN_CREATES = {"contact", "company", "deal", "task"}  # the plan's create objects this stage writes
LINKS_LOCK = 0x6C696E6B  # PostgreSQL advisory lock the write runs' link updates take ("link")
PIPELINE_CREATES = {"pipeline", "pipeline_stage"}  # written before the records (``pipeline_run.py``)
# a record exists before anything refers to it; a Dataverse opportunity is closed by its action (DEAL-4)
OPERATIONS = ("create", "update", "close", "delete", "associate")
OUTCOMES = ("created", "updated", "deleted", "associated", "failed")  # what the UI's table counts per object


@dataclass
class WriteReport:
    """What one run wrote to one target."""

    created: int = 0
    updated: int = 0
    associated: int = 0
    pipelines: int = 0  # HubSpot pipelines and stages created (DEAL-3)
    deleted: int = 0
    failed: int = 0
    reconciled: int = 0  # creates in doubt found in the target: confirmed, not sent again
    in_doubt: int = 0  # creates whose answer was lost in this run (looked up; those not found go next run)
    already_done: int = 0  # planned writes confirmed by an earlier run (not yet read back by an extract)
    waiting_retry: int = 0  # refused writes not yet due for another try
    superseded: int = 0
    deferred: int = 0  # planned writes the calls left in the 24 h budget do not cover (OPS-8): a later run's
    not_yet_written: dict[str, int] = field(default_factory=dict)  # planned work this stage does not write yet
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few writes, as sent
    errors: list[dict[str, Any]] = field(default_factory=list)  # this run's refusals (record, code, text)
    # per API object (``contacts``, ``Lead``, ``contacts>companies``, ...): records per outcome (``OUTCOMES``)
    by_object: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, obj: str, outcome: str, n: int) -> None:
        if n:
            per = self.by_object.setdefault(obj, dict.fromkeys(OUTCOMES, 0))
            per[outcome] += n


def requests_for(engine: Engine, settings: Settings, target: str,
                 hubspot_stages: dict[tuple[str, str], tuple[str, str]] | None = None,
                 ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The stored plan's writes to ``target`` this stage makes, and the planned work it leaves (per kind);
    ``hubspot_stages``: HubSpot's pipelines' ids by label (``pipeline_writes.stage_ids``), for deals planned
    into the pipelines the plan creates (DEAL-3)."""
    plan = stored_plan(engine, target, ("creates", "updates", "deletes", "associations"))
    creates = plan.creates[plan.creates["object"].isin(WRITTEN_CREATES)]
    left = plan.creates.loc[~plan.creates["object"].isin(WRITTEN_CREATES | PIPELINE_CREATES), "object"]
    not_yet = {f"create {k}": int(v) for k, v in left.value_counts().items()}
    owners = unified.read(engine, "owners")
    values = target_owners(carried_values(engine, settings, target, creates), target, owners) if len(creates) \
        else pd.DataFrame()
    made, waiting = create_requests(
        target, creates, values, {o.name: o.lookup_field for o in catalog.objects(target)},
        _source_types(engine, creates) if target == "hubspot" else None,
        keyed=frozenset(o.name for o in catalog.objects(target) if o.sync_key), hubspot_stages=hubspot_stages,
        hubspot_deal_stages=_hubspot_deal_stages(engine, creates.loc[creates["object"] == "deal", "source_id"])
        if target != "hubspot" else None)
    for reason, count in waiting["reason"].value_counts().items():
        not_yet[f"create deal: {reason}"] = int(count)
    updates = plan.updates
    if len(updates):  # the API's field names and value forms (OPS-9), as the plan showed them
        updates = target_owners(update_forms_of(engine, settings, target, updates.drop(
            columns=["target_field", "api_value"], errors="ignore"))[0], target, owners)
    stages = _hubspot_deal_stages(engine, updates.loc[updates["field"] == STAGE_FIELD, "hubspot_id"]) \
        if target != "hubspot" and len(updates) else None
    changed = update_requests(target, updates, update_objects(engine, target, updates) if len(updates)
                              else pd.Series(dtype=object), stages)
    deletes = plan.deletes
    gone = delete_requests(target, deletes, deletes["object"].map(HUBSPOT_OBJECT) if target == "hubspot"
                           else deletes["object_type"])
    linked = association_requests(target, plan.associations)
    return pd.concat([made, changed, gone, linked], ignore_index=True), not_yet


def _hubspot_deal_stages(engine: Engine, deal_ids: pd.Series) -> dict[str, str]:
    """HubSpot deal id -> ``<pipeline>:<stage>`` as HubSpot holds it now (what the merge compares), of these."""
    ids = list(dict.fromkeys(deal_ids.astype(str)))
    if not ids:
        return {}
    column = unified.column("deal_facts", "deal_id")
    facts = pd.concat([unified.read(engine, "deal_facts", column.in_(ids[start : start + 5_000]),
                                    columns=["deal_id", "pipeline", "dealstage"])
                       for start in range(0, len(ids), 5_000)])  # fmt: skip
    return dict(zip(facts["deal_id"].astype(str), facts["pipeline"].astype(str) + ":" + facts["dealstage"].astype(str),
                    strict=True))


def _source_types(engine: Engine, creates: pd.DataFrame) -> dict[str, str]:
    """Source record id -> its type (Lead, Contact; contact, lead) as the contact identities hold it."""
    ids = creates.loc[creates["object"] == "contact", "source_id"].astype(str).tolist()
    if not ids:
        return {}
    column = unified.column("contact_members", "id")
    found = pd.concat([unified.read(engine, "contact_members", column.in_(ids[start : start + 5_000]),
                                    columns=["id", "type"]) for start in range(0, len(ids), 5_000)])  # fmt: skip
    return dict(zip(found["id"].astype(str), found["type"].astype(str), strict=True))


def _baseline_rows(done: list[tuple[dict, str | None]]) -> pd.DataFrame:
    """The baselines confirmed writes set (a create in HubSpot names its link by the new id), each with the
    write that set it (``write_id``)."""
    rows = []
    for record, target_id in done:
        confirm = record["confirm"]
        if "hubspot_id" in confirm:  # a create
            named = {"kind": confirm["kind"], "hubspot_id": confirm["hubspot_id"] or target_id,
                     "other_crm": confirm["other_crm"], "write_id": record["key"]}
            rows += [{**named, **b} for b in confirm["baselines"]]
        else:
            rows += [{**b, "write_id": record["key"]} for b in confirm["baselines"]]
    return pd.DataFrame(rows, columns=[*baselines.KEY, "value", "write_id"])


def _links_made(conn: Connection, target: str, done: list[tuple[dict, str | None]]) -> tuple[pd.DataFrame,
                                                                                              pd.DataFrame]:
    """The links confirmed creates make (``origin: sync``: binding, ``transform/links.py``), each the row it
    has in ``conn``'s transaction with the new record added, and the history rows saying so."""
    made = [(r["confirm"], target_id) for r, target_id in done if "other_crm" in r["confirm"] and target_id]
    if not made:
        return link_rules.empty(), pd.DataFrame()
    ids = [str(c["hubspot_id"] or target_id) for c, target_id in made]
    before = {}
    for kind in dict.fromkeys(c["kind"] for c, _ in made):
        mine = [i for (c, _), i in zip(made, ids, strict=True) if c["kind"] == kind]
        old = link_store.load(conn, kind=kind, hubspot_ids=mine).drop_duplicates("hubspot_id")
        before.update({(kind, str(r["hubspot_id"])): r for r in old.to_dict("records")})
    rows, changes = [], []
    for (c, target_id), hubspot_id in zip(made, ids, strict=True):
        crm, had = c["other_crm"], before.get((c["kind"], hubspot_id))
        row = {**dict.fromkeys(link_store.COLUMNS), **(had or {}), "kind": c["kind"], "hubspot_id": hubspot_id,
               f"{crm}_id": str(c["other_id"] or target_id), f"{crm}_type": c["other_type"], "origin": "sync"}
        # a linked deal's identity is its HubSpot deal's (``transform/deals.py``)
        row["identity_id"] = f"hubspot:{hubspot_id}" if c["kind"] == "deal" else row["identity_id"] or c["identity_id"]
        rows.append(row)
        changes.append({"kind": c["kind"], "hubspot_id": hubspot_id, "change": "changed" if had else "created",
                        "before": link_rules.side(had), "after": link_rules.side(row),
                        "reason": f"created in {target} by the sync"})  # fmt: skip
    return pd.DataFrame(rows, columns=list(link_store.COLUMNS)).astype(object), pd.DataFrame(changes)


def _confirm(engine: Engine, target: str, done: list[tuple[dict, str | None]], failed: list[tuple[str, str | None,
             str | None]], now: datetime) -> None:
    """Record outcomes in one transaction: confirmed writes, their baselines and the links creates make,
    refused ones."""
    with engine.begin() as conn:
        # the three CRMs' write runs may confirm side by side, each adding its own record to a contact's link:
        # one at a time, each reading the link as the last one left it (SQLite: its write lock, taken at BEGIN)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LINKS_LOCK})
        links, changes = _links_made(conn, target, done)
        if len(links):
            link_store.apply(conn, links, changes, now)
        if done:
            # stamped when confirmed, not when the run began: the merge takes a mirror copy read before this
            # moment for one the write replaced (CONF-5), which a copy read while the call was in flight may be
            baselines.record(conn, _baseline_rows(done), at=datetime.now(UTC))
            outbox.mark_done(conn, [(r["key"], target_id) for r, target_id in done], now)
        if failed:
            outbox.mark_failed(conn, failed, now)


async def _reconcile(engine: Engine, target: str, client: Any, report: WriteReport, now: datetime) -> None:
    """Creates in doubt found in the target are confirmed (by their lookup field), never sent twice."""
    doubt = outbox.in_doubt(engine, target)
    creates = doubt[(doubt["operation"] == "create") & doubt["lookup_value"].notna()]
    done = []
    roles = doubt[(doubt["operation"] == "associate") & (doubt["object"] == CONTACT_ROLE)]
    if len(roles):  # DEAL-6: a contact role has no key field: it is found by its pair
        held = await client.contact_roles([str(p["OpportunityId"]) for p in roles["payload"]])
        done += [(r, None) for r in roles.to_dict("records")
                 if (str(r["payload"]["OpportunityId"]), str(r["payload"]["ContactId"])) in held]  # fmt: skip
    for (obj, lookup_field), group in creates.groupby(["object", "lookup_field"], sort=False):
        found = await client.find(str(obj), str(lookup_field), group["lookup_value"].astype(str).tolist())
        for record in group.to_dict("records"):
            target_id = found.get(str(record["lookup_value"]).lower())
            if target_id is not None:
                done.append((record, target_id))
    if any("close" in r["confirm"] for r, _ in done):  # found, but maybe not closed yet (DEAL-4)
        done = await _close_created(client, done, report)
    _confirm(engine, target, done, [], now)
    report.reconciled += len(done)


async def write_target(engine: Engine, settings: Settings, target: str, client: Any,
                       now: datetime | None = None) -> WriteReport:
    """Execute ``target``'s stored plan through ``client`` (an open ``crm.outcomes.Writer``)."""
    now = now or datetime.now(UTC)
    report = WriteReport()
    await _reconcile(engine, target, client, report, now)
    stages = None
    if target == "hubspot":
        stages, report.pipelines, stopped = await ensure_pipelines(engine, client)
        report.errors += stopped
    requests, report.not_yet_written = requests_for(engine, settings, target, stages)
    known = requests[["key"]].merge(outbox.states(engine, requests["key"].tolist()), on="key", how="left")
    done = known["status"].eq(outbox.DONE).to_numpy(dtype=bool)
    due_later = (known["next_attempt_at"] > pd.Timestamp(now)).fillna(False).to_numpy(dtype=bool)
    # a refused record that was changed since (fixed, say) goes again at once
    same = np.array([p == outbox.as_recorded(q) for p, q in zip(known["payload"], requests["payload"], strict=True)],
                    dtype=bool)
    waiting = known["status"].eq(outbox.FAILED).to_numpy(dtype=bool) & due_later & same
    report.already_done, report.waiting_retry = int(done.sum()), int(waiting.sum())
    with engine.begin() as conn:
        report.superseded = outbox.supersede(conn, target, set(requests["key"]), now)
    todo = requests[~done & ~waiting]
    # OPS-2/OPS-8: what the calls left in the 24 h budget do not cover stays for later, as the plan shows it
    work = pd.DataFrame({"action": todo["operation"].to_numpy(), "object": todo["kind"].to_numpy(),
                         "record_id": todo["ref"].astype(str).to_numpy()})  # fmt: skip
    kept, deferred = fit_budget(target, work, calls_left(engine, settings, target))
    if len(deferred):
        keep = set(zip(kept["action"], kept["object"], kept["record_id"], strict=True))
        todo = todo[[k in keep for k in zip(work["action"], work["object"], work["record_id"], strict=True)]]
    report.deferred = len(deferred)
    # creates first: a record exists before anything refers to it
    sent = 0
    try:
        for operation in OPERATIONS:
            for obj, group in todo[todo["operation"] == operation].groupby("object", sort=False):
                size = batch_size(target, str(obj))
                for start in range(0, len(group), size):
                    await _send(engine, target, client, operation, str(obj), group.iloc[start : start + size],
                                report, now)
                    sent += len(group.iloc[start : start + size])
    except BudgetExhausted as spent:  # the calls the plan did not count (look-ups, describes) took the last ones
        # the batch it stopped at is recorded as sent but was not: the next run looks it up, then sends it
        report.deferred += len(todo) - sent
        report.errors.append({"object": "", "operation": "", "ref": f"{len(todo) - sent} records",
                              "code": "BUDGET", "message": str(spent)})  # fmt: skip
    return report


async def _send(engine: Engine, target: str, client: Any, operation: str, obj: str, batch: pd.DataFrame,
                report: WriteReport, now: datetime) -> None:
    with engine.begin() as conn:  # recorded before the call, committed (Invariant 1)
        outbox.record_sent(conn, target, batch, now)
    records = batch.to_dict("records")
    try:
        if operation == "create":
            outcomes: list[WriteOutcome] = await client.create(obj, [r["payload"] for r in records])
        elif operation == "update":
            outcomes = await client.update(obj, [(r["ref"], r["payload"]) for r in records])
        elif operation == "delete":
            outcomes = await client.delete(obj, [r["ref"] for r in records])
        elif operation == "close":
            outcomes = await client.close_opportunities([(r["ref"], bool(r["payload"]["won"])) for r in records])
        else:
            outcomes = await _associate(client, target, obj, records)
    except WriteInDoubt as doubt:  # the answer to a create was lost: what landed is found, the rest goes later
        report.in_doubt += len(records)
        report.errors.append({"object": obj, "operation": operation, "ref": f"{len(records)} records",
                              "code": "IN_DOUBT", "message": str(doubt)})  # fmt: skip
        await _reconcile(engine, target, client, report, now)
        return
    done, failed = [], []
    for record, outcome in zip(records, sorted(outcomes, key=lambda o: o.index), strict=True):
        if outcome.ok:
            done.append((record, outcome.id or (record["ref"] if operation == "update" else None)))
        else:
            failed.append((record["key"], outcome.code, outcome.message))
            report.errors.append({"object": obj, "operation": operation, "ref": record["ref"],
                                  "code": outcome.code, "message": outcome.message})  # fmt: skip
    _confirm(engine, target, done, failed, now)
    report.failed += len(failed)
    report.count(obj, "failed", len(failed))
    if operation == "create" and any("close" in r["confirm"] for r, _ in done):
        done = await _close_created(client, done, report)
    counted = {"create": "created", "update": "updated", "close": "updated", "delete": "deleted",
               "associate": "associated"}[operation]
    setattr(report, counted, getattr(report, counted) + len(done))
    report.count(obj, counted, len(done))
    report.examples += [{"operation": operation, "object": obj, "ref": r["ref"], "payload": r["payload"]}
                        for r, _ in done[: max(0, 3 - len(report.examples))]]  # fmt: skip


async def _associate(client: Any, target: str, obj: str, records: list[dict]) -> list[WriteOutcome]:
    """DEAL-6, as ``write_requests.association_requests`` states each: a HubSpot association, a Salesforce
    OpportunityContactRole created, or the record's lookup field updated."""
    if target == "hubspot":
        from_type, to_type = obj.split(">")
        return await client.associate(from_type, to_type, [(r["payload"]["from"], r["payload"]["to"])
                                                           for r in records])  # fmt: skip
    if obj == CONTACT_ROLE:
        return await client.create(obj, [r["payload"] for r in records])
    return await client.update(obj, [(r["ref"], r["payload"]) for r in records])


async def _close_created(client: Any, done: list[tuple[dict, str | None]], report: WriteReport,
                         ) -> list[tuple[dict, str | None]]:
    """DEAL-4: Dataverse opportunities created to be closed, closed by their action right after the create. One
    that stays open keeps no stage baseline: the next plan sees its stage differ and writes the close again."""
    closing = [(i, target_id, bool(r["confirm"]["close"])) for i, (r, target_id) in enumerate(done)
               if "close" in r["confirm"] and target_id]  # fmt: skip
    outcomes = await client.close_opportunities([(target_id, won) for _, target_id, won in closing])
    out = list(done)
    for (i, target_id, _), outcome in zip(closing, sorted(outcomes, key=lambda o: o.index), strict=True):
        if outcome.ok:
            continue
        record = out[i][0]
        kept = [b for b in record["confirm"]["baselines"] if b["field"] != STAGE_FIELD]
        out[i] = ({**record, "confirm": {**record["confirm"], "baselines": kept}}, target_id)
        report.errors.append({"object": "opportunities", "operation": "close", "ref": target_id,
                              "code": outcome.code, "message": outcome.message})  # fmt: skip
    return out

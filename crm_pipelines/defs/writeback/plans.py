"""Every target CRM's plan from the state database as it is: the one function the plan assets and
``crm-pipelines plan`` both call.

Contacts (creates CON-1/3/5/6/7/8, DEL-4; field updates CONF-*), companies (creates COM-1..3, field updates,
lifecycle COM-4), deals (creates DEAL-2..5 with the pipelines DEAL-3 needs, field updates, findings),
contact lifecycle (DEAL-7, CON-9), associations (DEAL-6), cross-CRM rollups (ROLL-2/3), deletions (DEL-1..4),
HubSpot tasks as Salesforce Tasks (OPS-4), the values creates carry and every value's API form (OPS-9): read
here, decided by the pure functions of ``crm_pipelines/sync/``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.defs.writeback.create_value_inputs import (
    create_values_of,
    may_be_too_long_anywhere,
    update_forms_of,
)
from crm_pipelines.defs.writeback.deletion_inputs import deletion_plan_of
from crm_pipelines.defs.writeback.plan_inputs import _values, contact_create_plan, linked_merges
from crm_pipelines.defs.writeback.plan_scope import Scope
from crm_pipelines.defs.writeback.rollup_inputs import rollup_plan_from_state
from crm_pipelines.defs.writeback.task_inputs import TaskPlan, task_plan_of
from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.settings import Settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, unified
from crm_pipelines.state.db import engine_for_url
from crm_pipelines.state.schema import links as link_table
from crm_pipelines.sync.association_plan import association_changes
from crm_pipelines.sync.company_plan import CompanyCreateSettings, company_creates, lifecycle_updates
from crm_pipelines.sync.contact_creates import CREATE_MEMBER_COLUMNS
from crm_pipelines.sync.deal_plan import (
    DealCreateSettings,
    StagePairs,
    deal_creates,
    drop_unmapped_stages,
    pipeline_creates,
    stage_updates,
    stage_values,
)
from crm_pipelines.sync.field_plan import UPDATE_COLUMNS, field_updates
from crm_pipelines.sync.lifecycle_plan import contact_lifecycle_updates, won_deal_contacts
from crm_pipelines.sync.plan import CREATE_COLUMNS, FINDING_COLUMNS, LEFT_OUT_COLUMNS, TargetPlan, concat, frame

TARGETS = ("hubspot", "salesforce", "dynamics")
OTHERS = ("salesforce", "dynamics")
_ACCOUNT_OBJECT = {"salesforce": "Account", "dynamics": "accounts"}
_DEAL_OBJECT = {"hubspot": "deals", "salesforce": "Opportunity", "dynamics": "opportunities"}
# what ``pipeline_creates`` reads of a HubSpot deal create into a new pipeline (DEAL-3/4)
_PIPELINE_INPUTS = ("identity_id", "pipeline", "stage", "status", "is_closed", "is_won")


def _hubspot_ids(identities: pd.DataFrame, ids: set[str]) -> list[str]:
    return identities.loc[identities["identity_id"].isin(ids), "hubspot_id"].dropna().astype(str).tolist()


@dataclass
class ContactPlan:
    """The contact part of every target's plan."""

    updates: dict[str, pd.DataFrame]  # target -> field updates of linked contacts (UPDATE_COLUMNS)
    creates: dict[str, pd.DataFrame]  # target -> contacts to create (contact_creates.CREATE_COLUMNS)
    left_out: pd.DataFrame  # candidates not created and why (contact_creates.SKIP_COLUMNS)


def contact_plan(engine: Engine, settings: Settings) -> ContactPlan:
    """Contacts to create in each CRM and the field updates of linked contacts."""
    updates = field_updates(linked_merges(engine, settings, "contact"), "contact")
    creates, left_out = contact_create_plan(engine, settings)
    return ContactPlan(updates, creates, left_out)


def _enabled(settings: Settings) -> list[str]:
    return [crm for crm in OTHERS if getattr(settings.connections, crm).enabled]


def company_settings(settings: Settings) -> dict[str, CompanyCreateSettings]:
    out = {}
    for crm in _enabled(settings):
        c = getattr(settings.sync, crm).companies
        out[crm] = CompanyCreateSettings(
            enabled=c.enabled, direction=c.direction, requested=tuple(c.requested),
            enabled_since=None if c.enabled_since is None else pd.Timestamp(c.enabled_since),
            import_ids=tuple(c.import_ids))  # fmt: skip
    return out


def deal_settings(settings: Settings) -> dict[str, DealCreateSettings]:
    out = {}
    for crm in _enabled(settings):
        d = getattr(settings.sync, crm).deals
        out[crm] = DealCreateSettings(
            enabled=d.enabled, direction=d.direction, filters=tuple(d.filters),
            pipelines=tuple(StagePairs(m.other_pipeline, m.hubspot_pipeline, dict(m.stages)) for m in d.pipelines))
    return out


def _modified(engine: Engine, crm: str, ids: list[str]) -> pd.DataFrame:
    """``crm``, ``id``, ``modified_at`` of these company records (COM-3)."""
    table = mirror.table_for(crm, _ACCOUNT_OBJECT[crm])
    with engine.connect() as conn:
        rows = [r for start in range(0, len(ids), 1000)
                for r in conn.execute(sa.select(table.c.id, table.c.modified_at)
                                      .where(table.c.id.in_(ids[start : start + 1000])))]  # fmt: skip
    out = pd.DataFrame(rows, columns=["id", "modified_at"]).assign(crm=crm)
    out["modified_at"] = pd.to_datetime(out["modified_at"], utc=True)
    return out


def _contact_creates(contacts: ContactPlan) -> dict[str, pd.DataFrame]:
    return {crm: made.assign(object="contact", detail=made["email"]) for crm, made in contacts.creates.items()}


_TABLES = ("contact_identities", "contact_members", "company_identities", "account_candidates", "deal_identities",
           "deal_stages", "deal_facts", "contact_company", "deal_contact", "deal_company", "contact_lifecycle",
           "company_lifecycle", "hubspot_pipelines")  # fmt: skip
_COLUMNS = {"contact_members": CREATE_MEMBER_COLUMNS}  # tables of which the plans read only some columns


def read_tables(engine: Engine) -> dict[str, pd.DataFrame]:
    """Every row of the ``unified`` tables a full plan reads (the columns it uses)."""
    return {name: unified.read(engine, name, columns=_COLUMNS.get(name)) for name in _TABLES}


def compute_plans(engine: Engine, settings: Settings, read: dict[str, pd.DataFrame] | None = None,
                  scope: Scope | None = None, keep_values: bool = True,
                  elsewhere: Future[PlannedElsewhere] | None = None) -> tuple[dict[str, TargetPlan], pd.DataFrame]:
    """Target CRM -> its plan without the pipelines to create, and the HubSpot deal creates that need a new
    pipeline (what ``pipeline_creates`` reads). ``read``: the ``unified`` tables' rows to plan from (default:
    all of them); ``scope``: the identities planned (``read`` holds them and what they reach): only the
    linked records of those are merged; ``keep_values``: the creates' values kept in the plans, not only their
    findings (the stored plan does not keep them: a row per create and field); ``elsewhere``: the field updates
    of linked contacts and the tasks' plan, computed in another process (``planned_elsewhere``), else here."""
    if elsewhere is not None and keep_values:  # what it returns of HubSpot's contacts serves the findings only
        raise ValueError("compute_plans: a plan planned in part elsewhere keeps no create values")
    read = read if read is not None else read_tables(engine)
    whole = scope is None
    hubspot_of = {kind: None if whole else _hubspot_ids(read[table], ids)
                  for kind, table, ids in (("contact", "contact_identities", scope and scope.contacts),
                                           ("company", "company_identities", scope and scope.companies),
                                           ("deal", "deal_identities", scope and scope.deals))}  # fmt: skip
    contact_ids, companies, deals = read["contact_identities"], read["company_identities"], read["deal_identities"]
    # the order of the rows decides which of two companies with one domain is created (COM-3): by identity
    companies = companies.sort_values("identity_id", kind="stable", ignore_index=True)
    planned_contacts = contact_ids if whole else contact_ids[contact_ids["identity_id"].isin(scope.contacts)]
    # a full plan reads each field table once, for the merges and for the values its creates carry (a plan that
    # keeps no values keeps only HubSpot's: ``_forget_others``); contacts merged in another process
    # (``elsewhere``) read HubSpot's contacts there, which returns the few the creates' findings need
    records_read: dict = {}
    deal_rules = deal_settings(settings)
    contact_made, contact_left = contact_create_plan(
        engine, settings, planned_contacts,
        read["contact_members"][read["contact_members"]["identity_id"].isin(planned_contacts["identity_id"])],
        whole=whole)
    planned = {crm: made["identity_id"] for crm, made in contact_made.items()}

    # companies: creates (COM-1..3)
    company_rules = company_settings(settings)
    modified = None
    if any(r.enabled_since is not None for r in company_rules.values()):
        free = companies[companies["hubspot_id"].isna()]
        modified = pd.concat([_modified(engine, crm, free[f"{crm}_id"].dropna().astype(str).tolist())
                              for crm in company_rules], ignore_index=True)  # fmt: skip
    deletions = deletion_plan_of(engine, settings)  # DEL-1..3; its company deletions feed DEL-4
    company_made, company_left = company_creates(companies, read["account_candidates"],
                                                 read["contact_company"], contact_ids, company_rules, planned,
                                                 modified, deletions.companies)

    # deals: creates (DEAL-2..5)
    values = {}
    if any(r.filters for r in deal_rules.values()):  # CON-8 reads the deals' mapped values
        for crm, column in (("hubspot", "hubspot_id"), ("salesforce", "salesforce_id"),
                            ("dynamics", "dynamics_id")):
            ids = deals.loc[deals["linked"].eq(False) & deals[column].notna(), column].astype(str).tolist()
            values[crm] = _values(engine, crm, _DEAL_OBJECT[crm], ids) if ids else None
    deal_made, deal_left, deal_findings = deal_creates(deals, read["deal_stages"], read["deal_facts"],
                                                       deal_rules, values)
    to_hubspot = deal_made.get("hubspot", frame(CREATE_COLUMNS))
    new_pipeline = to_hubspot[to_hubspot["status"] == "new_pipeline"] if "status" in to_hubspot else None
    pipeline_inputs = frame(_PIPELINE_INPUTS, new_pipeline)
    # lifecycle: DEAL-7 (and CON-9) on HubSpot contacts, then COM-4 on their companies
    won_from = [crm for crm in _enabled(settings) if getattr(settings.sync, crm).deals.closed_won_sets_customer]
    won = won_deal_contacts(read["deal_stages"], deals, read["deal_contact"], contact_ids, won_from)
    lifecycle, stages = contact_lifecycle_updates(read["contact_lifecycle"], won)
    company_sync_on = any(r.enabled for r in company_rules.values())
    company_lifecycle = (lifecycle_updates(stages, read["company_lifecycle"], read["contact_company"], contact_ids,
                                           companies) if company_sync_on else None)  # fmt: skip

    pairs = {"contact_company": read["contact_company"], "deal_contact": read["deal_contact"],
             "deal_company": read["deal_company"]}  # fmt: skip
    identities = {"contact": contact_ids, "company": companies, "deal": deals}
    syncing = {crm: {obj: (getattr(getattr(settings.sync, crm), attr).enabled,
                           getattr(getattr(settings.sync, crm), attr).direction)
                     for obj, attr in (("contact", "contacts"), ("company", "companies"), ("deal", "deals"))}
               for crm in _enabled(settings)}  # fmt: skip
    # ROLL-2/3, where targets are named: computed whole (an incremental plan keeps the rows of the contacts it
    # replans; a changed deal reaches its contacts)
    rollups, rollup_findings = rollup_plan_from_state(engine, settings)
    # associations (DEAL-6) between identities both ends of which the target holds, per target in turn (each
    # names the ends it leaves to the next)
    association_ends: dict = {}
    associations = {target: association_changes(target, pairs, identities, syncing, association_ends)
                    for target in TARGETS}
    # linked companies and deals: mapped fields, and a deal's stage (in HubSpot's terms, back to the other CRM's)
    company_updates = field_updates(linked_merges(engine, settings, "company", hubspot_ids=hubspot_of["company"],
                                                  cache=records_read, writes_only=True), "company")
    _forget_others(records_read, keep_values)
    deal_merged = linked_merges(engine, settings, "deal", stage_values(read["deal_stages"], read["deal_facts"]),
                                hubspot_ids=hubspot_of["deal"], cache=records_read, writes_only=True)
    _forget_others(records_read, keep_values)
    deal_updates = field_updates(drop_unmapped_stages(deal_merged), "deal")
    stage_findings = []
    for crm, rules in deal_rules.items():
        if crm in deal_updates:
            deal_updates[crm], found = stage_updates(deal_updates[crm], crm, rules)
            stage_findings.append(found)
    deal_findings = concat(FINDING_COLUMNS, [deal_findings, *stage_findings])
    # linked contacts and OPS-4's tasks, last: planned meanwhile in another process on a large state
    # (``planned_elsewhere``)
    done = elsewhere.result() if elsewhere is not None else None
    contact_updates = (done.contact_updates if done is not None else
                       _contact_updates(engine, settings, hubspot_of["contact"], records_read, keep_values))
    if done is not None and done.long_contacts is not None:  # all the creates' findings read of them
        records_read[("hubspot", "contacts")] = done.long_contacts
    # OPS-4: HubSpot tasks as Salesforce Tasks (an incremental plan: those whose inputs moved)
    tasks = (done.tasks if done is not None else task_plan_of(engine, settings) if whole else
             task_plan_of(engine, settings, scope.tasks) if scope.tasks else TaskPlan.empty())
    contacts = ContactPlan(contact_updates, contact_made, contact_left)

    contact_creates_by_target = _contact_creates(contacts)
    plans = {}
    for target in TARGETS:
        creates = [contact_creates_by_target.get(target), company_made.get(target), deal_made.get(target)]
        updates = [contacts.updates.get(target), company_updates.get(target), deal_updates.get(target)]
        if target == "hubspot":
            updates += [lifecycle, company_lifecycle]
        updates.append(rollups.get(target))
        made, assoc_left = associations[target]
        contact_left = contacts.left_out[contacts.left_out["target_crm"] == target].assign(object="contact")
        left = [contact_left, company_left[company_left["target_crm"] == target],
                deal_left[deal_left["target_crm"] == target], assoc_left]
        plans[target] = TargetPlan(
            crm=target, creates=concat(CREATE_COLUMNS, creates), updates=_updates(updates), associations=made,
            left_out=concat(LEFT_OUT_COLUMNS, left), deletes=deletions.deletes_for(target),
            not_deleted=frame(LEFT_OUT_COLUMNS, deletions.left_out_for(target)),
            findings=concat(FINDING_COLUMNS, [deal_findings[deal_findings["target_crm"] == target],
                                              rollup_findings[rollup_findings["target_crm"] == target]]))
    sf = plans["salesforce"]
    sf.creates, sf.left_out = concat(CREATE_COLUMNS, [sf.creates, tasks.creates]), concat(LEFT_OUT_COLUMNS, [
        sf.left_out, tasks.left_out])
    for target, plan in plans.items():  # the field values each create carries, in the API's form (OPS-9)
        plan.create_values, too_long = create_values_of(engine, settings, target, plan.creates,
                                                        tasks.values if target == "salesforce" else None, records_read,
                                                        whole, limited_only=not keep_values)
        plan.updates, too_long_updates = update_forms_of(engine, settings, target, plan.updates)
        plan.findings = concat(FINDING_COLUMNS, [plan.findings, too_long, too_long_updates])
        if not keep_values:
            plan.create_values = plan.create_values.iloc[:0]
    return plans, pipeline_inputs


def _forget_others(records_read: dict, keep_values: bool) -> None:
    """A plan that keeps no create values needs the other CRMs' field tables for its merges only (the creates'
    findings read HubSpot's values, ``limited_only``): each object's go once merged (peak memory)."""
    if not keep_values:
        for key in [key for key in records_read if key[0] != "hubspot"]:
            del records_read[key]


def _contact_updates(engine: Engine, settings: Settings, hubspot_ids: list[str] | None, records_read: dict,
                     keep_values: bool, links: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The field updates the merges of linked contacts make (CONF-*, CON-1), per target CRM; ``records_read``:
    the field tables read whole, kept for the creates' values; ``links``: the contact links, read already."""
    updates = field_updates(linked_merges(engine, settings, "contact", hubspot_ids=hubspot_ids, cache=records_read,
                                          writes_only=True, links=links), "contact")
    _forget_others(records_read, keep_values)
    return updates


# links from which a full plan computes part of itself in a process of its own: below, starting one (about a
# second) costs more than it saves
ELSEWHERE_FROM = 50_000


@dataclass
class PlannedElsewhere:
    """What ``planned_elsewhere``'s process returns."""

    contact_updates: dict[str, pd.DataFrame]  # ``_contact_updates``
    # HubSpot's contacts whose text may be too long for the other CRMs (``may_be_too_long_anywhere``; None: all):
    # what the creates' findings read of them, from the table the merges read
    long_contacts: pd.DataFrame | None
    tasks: TaskPlan  # OPS-4, ``task_plan_of``
    seconds: float  # the process's, its start included
    peak_rss_mb: float  # the process's peak resident memory


@contextmanager
def planned_elsewhere(engine: Engine, settings: Settings) -> Iterator[Future[PlannedElsewhere] | None]:
    """Parts of a full plan that need nothing else the plan computes, started in a process of their own while
    the caller reads the state and plans the rest (``compute_plans``' ``elsewhere``), which one core would do
    after the rest: the merges of linked contacts (``_contact_updates``, about half of a first plan's work);
    from the HubSpot contacts they read, the few whose text may be too long for the other CRMs (all the
    creates' findings read of them, OPS-9); then the tasks' plan (OPS-4). Which parts go there was measured
    at a million people: moving the companies' and deals' merges too made this process the longer one. None
    when the state holds fewer than ``ELSEWHERE_FROM`` links, or is a SQLite file, where every read takes the
    write lock (``state/db.py``) and two processes would take turns: the caller plans everything in its own
    process."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(link_table)).scalar_one()
    if count < ELSEWHERE_FROM:
        yield None
        return
    url = engine.url.render_as_string(hide_password=False)
    # spawned, not forked: the caller (a Dagster run) holds threads and open connections
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.submit(_planned_elsewhere, url, settings, time.time())


def _planned_elsewhere(url: str, settings: Settings, started: float) -> PlannedElsewhere:
    """``planned_elsewhere``'s parts of a full plan, in a worker process, from the state database at ``url``."""
    engine = engine_for_url(url)
    try:
        records_read: dict = {}
        links = link_store.load(engine, kind="contact")  # the merges' and the tasks'
        updates = _contact_updates(engine, settings, None, records_read, False, links)
        contacts = records_read.pop(("hubspot", "contacts"), None)
        long_contacts = None if contacts is None else may_be_too_long_anywhere(settings, "contacts", contacts)
        del contacts, records_read
        tasks = task_plan_of(engine, settings, contact_links=links)
        return PlannedElsewhere(updates, long_contacts, tasks, time.time() - started, peak_rss_mb())
    finally:
        engine.dispose()


def build_plans(engine: Engine, settings: Settings) -> dict[str, TargetPlan]:
    """Target CRM -> its plan, computed whole from the state database (not stored; ``update_plans`` stores
    it and keeps it up to date)."""
    plans, pipeline_inputs = compute_plans(engine, settings)
    pipelines = pipeline_creates(pipeline_inputs, unified.read(engine, "hubspot_pipelines"))
    hubspot = plans["hubspot"]
    hubspot.creates = concat(CREATE_COLUMNS, [pipelines, hubspot.creates])  # DEAL-3: before the deals created into them
    return plans


def _updates(parts: list[pd.DataFrame | None]) -> pd.DataFrame:
    """The field updates, one per record and field (a lifecycle rule's value replaces a merged one)."""
    out = concat(UPDATE_COLUMNS, parts)
    return out.drop_duplicates(["kind", "record_id", "field"], keep="last").reset_index(drop=True)

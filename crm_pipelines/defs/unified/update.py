"""Bringing the ``unified`` tables up to date with the mirror: incrementally from a watermark, or in full.

An incremental update reads the mirror rows stamped after the last update's watermark (per table), the
stored result it continues, and writes only the rows the incremental transform changes (Invariant 6). A
full update recomputes everything from the mirror and writes the rows that differ from what is stored. A
full update happens when asked, on the first run, and whenever something the incremental path does not
follow changed: the settings, the code version (``TRANSFORM_VERSION``), the reference data (pipelines,
stages, record types, owners, users) or the links the sync has written through. The result, the links and
the watermark move in one transaction; on PostgreSQL a full update then vacuums and analyzes the tables it
wrote (``sql.vacuum_analyze``).

Plain functions over an engine: the Dagster asset (``assets.py``), the bench and the tests call them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines import catalog
from crm_pipelines.defs.unified import rollup_view
from crm_pipelines.defs.unified.mirrors import load_mirrors
from crm_pipelines.defs.unified.stored_result import Reads, StoredResult
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror, plan_store, sql, unified
from crm_pipelines.state.cursors import get_cursor, write_cursor
from crm_pipelines.state.schema import MIRROR_TABLES, link_history
from crm_pipelines.state.schema import links as links_table
from crm_pipelines.transform import links as link_rules
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.incremental import TableChange, incremental_changes
from crm_pipelines.transform.pipeline import TransformResult, TransformSettings, run_transform

# Bump when the transform's output for unchanged input changes: stored results are then recomputed in full.
TRANSFORM_VERSION = "2026-12-04.1"
# A mirror write stamps its rows once its transaction has begun (``mirror.stamp``) and one writer at a time
# writes a table (each connection's runs share a pool), so the rows an update has not seen are exactly those
# stamped after its watermark. (A table written by two runs at once could commit an earlier stamp late; the
# ``incremental_equals_full`` check and a full run, ``full: true``, are the safety net.)
CURSOR = ("unified", "*")
REFERENCE = tuple((o.crm, o.name) for o in catalog.OBJECTS if o.kind is catalog.Kind.REFERENCE)

# result table -> the TableChange name of the incremental transform (same name where not listed)
_CHANGE_NAMES = {"contact_lifecycle": "lifecycle"}


@dataclass
class UnifiedUpdate:
    mode: str  # "incremental", "full", or "unchanged" (nothing extracted since the last update)
    reason: str
    mirror_rows: int  # mirror rows read (the delta, or every row in a full update)
    written: dict[str, int] = field(default_factory=dict)  # result rows written per table
    links_changed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    write_s: dict[str, float] = field(default_factory=dict)  # per table (incremental updates)
    changes: dict[str, TableChange] = field(default_factory=dict)  # incremental updates only
    reads: Reads | None = None  # the stored rows an incremental update read (incremental updates only)
    # what ``unified/contact_rollups`` shows (``rollup_view``): a few of the rows written, and the table's totals
    # once the update is stored (None: the update wrote no rollup)
    rollup_sample: pd.DataFrame | None = None
    rollup_totals: dict[str, float] | None = None

    @property
    def changed_rows(self) -> int:
        return sum(self.written.values())


def fingerprint(settings: TransformSettings, engine: Engine) -> str:
    """What the stored result depends on besides the mirror's records: a change of it means a full update."""
    digest = hashlib.sha256()
    digest.update(TRANSFORM_VERSION.encode())
    digest.update(repr(settings).encode())
    for crm, obj in REFERENCE:
        table = MIRROR_TABLES[(crm, obj)]
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.deleted, table.c.record).order_by(table.c.id)).all()
        digest.update(orjson.dumps([[r[0], bool(r[1]), r[2]] for r in rows], option=orjson.OPT_SORT_KEYS))
    # the links the writes record are not in it: each pairs a record the write just made, which the next extract
    # of that CRM brings in (the write and the extract share the connection's pool), and an incremental update
    # closes over the links of the records it reads
    return digest.hexdigest()


def _watermarks(engine: Engine) -> dict[str, str]:
    out = {}
    for crm, obj in MIRROR_TABLES:
        latest = mirror.last_extracted(engine, crm, obj)
        if latest is not None:
            out[f"{crm}.{obj}"] = latest.isoformat()
    return out


def load_delta(engine: Engine, watermarks: Mapping[str, str]) -> Mirrors:
    """The mirror rows stamped after each table's watermark; tables with none are absent."""
    frames = {}
    for crm, obj in MIRROR_TABLES:
        if (crm, obj) in REFERENCE:
            continue  # reference data reaches every record: its changes make a full update (fingerprint)
        mark = watermarks.get(f"{crm}.{obj}")
        frame = mirror.read_records(engine, crm, obj, after=datetime.fromisoformat(mark) if mark else None)
        if len(frame):
            frames[(crm, obj)] = frame
    return Mirrors(frames)


def result_tables(result: TransformResult, proposals: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every declared table's rows in a full result."""
    tables = {
        "contact_identities": result.contacts.identities, "contact_members": result.contacts.members,
        "contact_findings": result.contacts.findings, "company_identities": result.companies.identities,
        "company_findings": result.companies.findings, "account_candidates": result.account_candidates,
        "deal_identities": result.deals, "deal_stages": result.deal_stages, "owners": result.owners,
        "field_findings": result.field_findings, "contact_company": result.contact_company,
        "deal_contact": result.deal_contact, "deal_company": result.deal_company, "deal_facts": result.deal_facts,
        "hubspot_deal_contacts": result.hubspot_deal_contacts, "contact_rollups": result.rollups,
        "contact_lifecycle": result.lifecycle, "company_lifecycle": result.company_lifecycle,
        "hubspot_pipelines": result.hubspot_pipelines, "company_pair_src": result.company_pair_src,
        "deal_contact_src": result.deal_contact_src, "deal_company_src": result.deal_company_src,
        "company_domains": result.company_domains, "company_links": result.company_links,
    }  # fmt: skip
    for (crm, obj), frame in result.fields.items():
        tables[f"fields_{crm}_{obj.lower()}"] = unified.field_rows(frame)
    if proposals is not None:
        tables["stage_proposals"] = proposals
    return tables


def _replaced_rows(engine: Engine, writes: list[tuple[str, pd.DataFrame, pd.DataFrame]]) -> dict[int, pd.DataFrame]:
    """The stored rows each write (table, removed, added) replaces, read before the writes' transaction. On
    PostgreSQL the reads run side by side on connections of their own (a key lookup in each of some fifteen
    tables, mostly the server's time), instead of one after another inside the transaction. Only a table written
    once is read ahead: a second write's rows would depend on the first's. Safe because one sync run updates
    ``unified`` at a time (``defs/sync/change_sensor.py``), as the stored result's reads before it assume."""
    if engine.dialect.name != "postgresql":
        return {}
    times = Counter(table for table, _, _ in writes)
    once = [i for i, (table, _, _) in enumerate(writes) if times[table] == 1]

    found = sql.side_by_side(engine, lambda conn, i: unified.rows_at_keys(conn, *writes[i]), once)
    return dict(zip(once, found, strict=True))


def _table_of(change_name: str) -> str:
    if change_name.startswith("fields:"):
        crm, obj = change_name.removeprefix("fields:").split(".", 1)
        return f"fields_{crm}_{obj.lower()}"
    return {v: k for k, v in _CHANGE_NAMES.items()}.get(change_name, change_name)


def _deleted_ids(mirrors: Mirrors) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for (crm, _obj), frame in mirrors.frames.items():
        if "deleted" in frame and len(frame):
            dead = frame.loc[frame["deleted"].astype(bool), "id"]
            out |= {(crm, str(i)) for i in dead}
    return out


def _link_context(contacts: pd.DataFrame, members: pd.DataFrame, companies: pd.DataFrame) -> dict:
    leads = _converted_leads(members)
    methods = {}
    if len(companies):
        how = companies["salesforce_method"].astype(object).fillna(companies["dynamics_method"].astype(object))
        methods = dict(zip(companies["identity_id"].astype(object), how, strict=True))
    return {
        "converted": dict(zip(leads["id"], leads["converted_contact_id"], strict=True)),
        "emails": dict(zip(contacts["identity_id"], contacts["email"], strict=True)),
        "methods": {k: v for k, v in methods.items() if isinstance(v, str)},
    }


def _update_links(conn: Connection, new: pd.DataFrame, old: pd.DataFrame,
                  deleted: set[tuple[str, str]], context: dict) -> int:
    """Links as the identities now say (links the sync wrote through keep their origin)."""
    sync = old[old["origin"] == "sync"].set_index(["kind", "hubspot_id"]).index
    if len(sync):
        at = new.set_index(["kind", "hubspot_id"]).index.isin(sync)
        new.loc[at, "origin"] = "sync"
    found = link_rules.changes(old, new, deleted=deleted, **context)
    return link_store.apply(conn, new, found)


def update_unified(engine: Engine, settings: TransformSettings, *, full: bool = False,
                   proposals=None) -> UnifiedUpdate:
    """Bring the ``unified`` tables and the links up to date; ``proposals(mirrors)`` gives the stage-mapping
    proposals a full update stores (DEAL-2)."""
    started = time.perf_counter()
    marks_now = _watermarks(engine)
    stored_marks = get_cursor(engine, *CURSOR, "watermarks")
    known = get_cursor(engine, *CURSOR, "fingerprint")
    current = fingerprint(settings, engine)
    reason = ("asked for" if full else "first update" if stored_marks is None or known is None
              else "settings, code version or reference data changed" if known != current else "")
    if reason:
        return _full(engine, settings, current, marks_now, reason, proposals, started)
    delta = load_delta(engine, json.loads(stored_marks))
    loaded = time.perf_counter()
    rows = sum(len(f) for f in delta.frames.values())
    if not rows:
        return UnifiedUpdate("unchanged", "nothing extracted since the last update", 0,
                             seconds={"read_s": loaded - started})
    stored = StoredResult(engine)
    sync_links = link_store.load(engine, origin="sync")
    changes = stored.changes(delta, sync_links, settings)
    computed = time.perf_counter()
    report = UnifiedUpdate("incremental", f"{rows} mirror rows extracted since the last update", rows,
                           changes=changes, reads=stored.reads)
    ident = changes.get("contact_identities")
    companies = changes.get("company_identities")
    prev = stored.result()
    new_contacts = ident.added if ident is not None else prev.contacts.identities.iloc[:0]
    new_companies = companies.added if companies is not None else prev.companies.identities.iloc[:0]
    new = link_rules.derive(new_contacts, new_companies)
    gone_ids = set()
    for change, name in ((ident, "contact_identities"), (companies, "company_identities")):
        if change is not None and len(change.removed):
            gone_ids |= set(stored.rows(name, "identity_id", change.removed["identity_id"])["hubspot_id"].dropna())
    hubspot_ids = gone_ids | set(new["hubspot_id"])
    old = link_store.load(engine, hubspot_ids=hubspot_ids) if hubspot_ids else link_rules.empty()
    members = changes["contact_members"].added if "contact_members" in changes else prev.contacts.members.iloc[:0]
    rollups = changes.get("contact_rollups")
    if rollups is not None:  # the totals move by the rows replaced (read by key, before the write's transaction)
        replaced = stored.rows("contact_rollups", "contact_id", rollups.removed["contact_id"].dropna())
        before = rollup_view.kept(engine) or rollup_view.counted(engine)
        report.rollup_totals = rollup_view.moved(before, rollups.added, replaced)
        report.rollup_sample = rollup_view.top(rollups.added)
    context = _link_context(new_contacts, members, new_companies)
    logged: list[pd.DataFrame] = []  # what the plan replans next (issue 12)
    writes = [(_table_of(name), change.removed, change.added) for name, change in changes.items()]
    writes = [(t, removed, unified.field_rows(added) if t.startswith("fields_") else added)
              for t, removed, added in writes]  # fmt: skip
    replaced = _replaced_rows(engine, writes)
    with engine.begin() as conn:  # SQLite: no other connection may be opened until this commits
        for i, (table, removed, added) in enumerate(writes):
            began = time.perf_counter()
            changed: list[pd.DataFrame] = []
            report.written[table] = report.written.get(table, 0) + unified.write_change(conn, table, removed, added,
                                                                                        changed, replaced.get(i))
            logged += [plan_store.table_records(table, rows) for rows in changed]
            report.write_s[table] = report.write_s.get(table, 0.0) + time.perf_counter() - began
        report.links_changed = _update_links(conn, new, old, _deleted_ids(delta), context)
        # the mirror delta too: a record's modification time decides the merge of its fields (CONF-2)
        logged += [plan_store.mirror_records(crm, obj, frame) for (crm, obj), frame in delta.frames.items()]
        plan_store.record_changes(conn, logged)
        if report.rollup_totals is not None:
            rollup_view.keep(conn, report.rollup_totals)
        write_cursor(conn, *CURSOR, "watermarks", json.dumps(marks_now))
    report.seconds = {"read_s": loaded - started, "transform_s": computed - loaded,
                      "write_s": time.perf_counter() - computed}
    return report


def _full(engine: Engine, settings: TransformSettings, current: str, marks: dict[str, str], reason: str,
          proposals, started: float) -> UnifiedUpdate:
    import dataclasses  # local imports: this change keeps to _full

    from crm_pipelines.memory import release_free_memory
    from crm_pipelines.transform.columns import mirror_columns

    # only the fields the transform reads: a record's other fields would be most of the memory (issue 11)
    mirrors = load_mirrors(engine, mirror_columns(settings.custom_fields))
    release_free_memory()  # the parsed records' pages
    loaded = time.perf_counter()
    sync_links = link_store.load(engine, origin="sync")
    rows = sum(len(f) for f in mirrors.frames.values())
    proposed = proposals(mirrors) if proposals else None
    deleted = _deleted_ids(mirrors)
    # the transform drops each mirror frame after its last reader: the result grows into that memory; nothing
    # reads this result in memory afterwards, so no lookups for incremental runs over it
    result = run_transform(mirrors, sync_links, settings, release=True, indexes=False)
    computed = time.perf_counter()
    report = UnifiedUpdate("full", reason, rows)
    del mirrors  # what is left of it (reference objects)
    release_free_memory()  # the transform's temporaries
    links_from = _LinkInputs(result.contacts.identities, _converted_leads(result.contacts.members),
                             result.companies.identities)
    fields = result.fields
    # from here on ``tables`` and ``fields`` hold the only references to the result's frames, so each frame's
    # memory goes back as soon as its table is written (issue 11: the writes held the whole result)
    tables = result_tables(dataclasses.replace(result, fields={}), proposed)
    del result, proposed
    report.rollup_totals = rollup_view.totals_of(tables["contact_rollups"])
    report.rollup_sample = rollup_view.top(tables["contact_rollups"])
    old = link_store.load(engine)  # before the transaction (SQLite: no other connection while it is open)
    old = old[old["kind"].isin(["contact", "company"])]
    with engine.begin() as conn:
        for name in list(tables):
            report.written[name] = unified.replace_by_difference(conn, name, tables.pop(name))
            release_free_memory()
        for key in list(fields):
            name, written = _write_fields(conn, key, fields.pop(key))
            report.written[name] = written
            release_free_memory()
        # the links' frames and lookups once the tables are written: not alive during the writes
        new = link_rules.derive(links_from.contacts, links_from.companies)
        context = _link_context(links_from.contacts, links_from.leads, links_from.companies)
        report.links_changed = _update_links(conn, new, old, deleted, context)
        write_cursor(conn, *CURSOR, "watermarks", json.dumps(marks))
        write_cursor(conn, *CURSOR, "fingerprint", current)
        rollup_view.keep(conn, report.rollup_totals)
        plan_store.record_full(conn)  # the next plan is a full one (issue 12)
    # what autovacuum would do to the tables just written, done now: the runs that follow look rows up in them
    # by key, or read them whole (``sql.vacuum_analyze``)
    written = time.perf_counter()
    sql.vacuum_analyze(engine, [*(unified.BY_NAME[name].table for name, n in report.written.items() if n),
                                *((links_table.name, link_history.name) if report.links_changed else ())])
    report.seconds = {"read_s": loaded - started, "transform_s": computed - loaded, "write_s": written - computed,
                      "vacuum_s": time.perf_counter() - written}
    return report


@dataclass(frozen=True)
class _LinkInputs:
    """What a full update's links are derived from, kept while the result's tables are written and freed."""

    contacts: pd.DataFrame  # contact identities
    leads: pd.DataFrame  # the converted Leads among the members (the only members the links read)
    companies: pd.DataFrame  # company identities


def _converted_leads(members: pd.DataFrame) -> pd.DataFrame:
    return members[(members["type"] == "Lead") & members["converted_contact_id"].notna()]


def _write_fields(conn: Connection, key: tuple[str, str], values: pd.DataFrame) -> tuple[str, int]:
    """One field table, its JSON documents made 50,000 at a time as it is written (issue 11: all of them at
    once were 1.7 GB at 1M people)."""
    crm, obj = key
    name = f"fields_{crm}_{obj.lower()}"
    parts = (unified.field_rows(values.iloc[i : i + 50_000]) for i in range(0, len(values), 50_000))
    return name, unified.replace_by_difference(conn, name, parts)


@dataclass(frozen=True)
class SampleCheck:
    passed: bool
    records: int  # mirror records re-derived
    differing: dict[str, int]  # table -> rows that differ from what is stored
    sample: list[dict]


def verify_sample(engine: Engine, settings: TransformSettings, result: TransformResult | None = None,
                  size: int = 50, seed: int | None = None) -> SampleCheck:
    """Incremental = full, on a sample: re-deriving ``size`` records per object from the mirror, as if they
    had just changed, must give exactly the rows stored for them (what a full recompute gives them).
    ``result``: the stored result in memory (with its lookups) when there is one, else it is read from the
    state database as the sample asks for it."""
    frames = {}
    for crm, obj in MIRROR_TABLES:
        if (crm, obj) in REFERENCE:
            continue
        table = MIRROR_TABLES[(crm, obj)]
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(table.c.id).order_by(sa.func.random()).limit(size))]
        if ids:
            frames[(crm, obj)] = mirror.read_records(engine, crm, obj, ids=ids)
    delta = Mirrors(frames)
    links = link_store.load(engine, origin="sync")
    changes = incremental_changes(result, delta, links, settings) if result is not None else \
        StoredResult(engine).changes(delta, links, settings)
    differing, sample = {}, []
    with engine.connect() as conn:
        for name, change in changes.items():
            table = _table_of(name)
            declared = unified.BY_NAME[table]
            added = unified.field_rows(change.added) if table.startswith("fields_") else change.added
            stored = unified.rows_at_keys(conn, table, change.removed, added)
            want = unified.fingerprint_rows(table, added)
            have = unified.fingerprint_rows(table, stored)
            if sorted(want) != sorted(have):
                differing[table] = len(set(want) ^ set(have))
                if len(sample) < 10:
                    sample.append({"table": table, "key": list(declared.key),
                                   "expected_rows": len(added), "stored_rows": len(stored)})
    records = sum(len(f) for f in frames.values())
    return SampleCheck(not differing, records, differing, sample)

"""The plan kept in the state database and brought up to date after ``unified``: in full, or incrementally.

A full plan computes every identity's rows (``plans.compute_plans``) and stores what differs from the stored
plan. It happens on the first plan, when asked (the assets' ``full`` flag), when the settings or the plan's
code version (``PLAN_VERSION``) changed since the stored plan, and after a full ``unified`` update (which
logs ``*``: anything may have changed). Otherwise the plan is incremental: it replans only the identities
``unified`` changed and what they reach (``plan_scope.py``), and replaces only their stored rows.

Plan-wide parts are recomputed from the stored plan, never from scratch: the HubSpot pipelines the deals
need (DEAL-3, from the stored HubSpot deal creates into new pipelines, kept as the part ``pipeline_inputs``),
when those creates or HubSpot's pipelines changed; the API calls against the 24 h budget with what is
deferred (OPS-2, OPS-8; the assets compute them from the stored plan's writes) every time. OPS-4's tasks are
stored per HubSpot task (``task:<id>``) and an incremental plan replans those whose inputs moved since the last
plan (``task_inputs.tasks_to_replan``).

Every frame of ``sync/plan.TargetPlan`` is stored (its dataclass fields, whatever they are) but the values
the creates carry (``NOT_STORED``: a row per create and field, most of a first sync's plan, and a copy of
what the state database holds; ``create_value_inputs.carried_values`` reads them when shown), each row under
the identity it was planned for (``attribute``). A frame whose rows name no identity cannot be replanned in
part: an incremental plan then becomes a full one. (A row whose identity the plan does not know, e.g. a link
whose identity is gone, is stored under ``*`` and replaced by full plans only.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines.defs.writeback.plan_scope import KINDS, TASK, WHOLE_PARTS, changed, links_and_baselines, reach
from crm_pipelines.defs.writeback.plans import TARGETS, compute_plans, planned_elsewhere, read_tables
from crm_pipelines.defs.writeback.task_inputs import task_marks, tasks_to_replan
from crm_pipelines.settings import Settings
from crm_pipelines.state import plan_store, unified
from crm_pipelines.state.copy_behind import CopyBehind
from crm_pipelines.state.cursors import get_cursor, write_cursor
from crm_pipelines.sync.deal_plan import pipeline_creates
from crm_pipelines.sync.plan import CREATE_COLUMNS, TargetPlan, concat

# Bump when the plan's output for unchanged inputs changes: the stored plan is then recomputed in full.
PLAN_VERSION = "2026-12-07.1"
CURSOR = ("plan", "*")
PIPELINE_INPUTS = "pipeline_inputs"  # not a TargetPlan frame: what the plan-wide pipelines are computed from
# rows of no identity known to the plan: kept from a full plan to the next (an incremental plan cannot tell
# whether it reaches them)
UNATTRIBUTED = "*"
# computed by every plan (its findings: text too long, OPS-9) but not stored: ``carried_values`` reads them
NOT_STORED = frozenset({"create_values"})
_ASSOCIATION_FROM = {"contact_company": "contact", "deal_contact": "deal", "deal_company": "deal"}


def parts() -> list[str]:
    """The frames of a target's plan: ``TargetPlan``'s fields besides ``crm``."""
    return [f.name for f in dataclasses.fields(TargetPlan) if f.name != "crm"]


def stored_parts() -> list[str]:
    """The frames the stored plan keeps (``parts`` but ``NOT_STORED``)."""
    return [part for part in parts() if part not in NOT_STORED]


def _frames() -> list[tuple[str, str]]:
    """Every (target, part) the stored plan holds rows of."""
    return [(target, part) for target in TARGETS for part in stored_parts()] + [("hubspot", PIPELINE_INPUTS)]


@dataclass
class PlanUpdate:
    mode: str  # "full", "incremental" or "unchanged"
    reason: str
    replanned: dict[str, int] = field(default_factory=dict)  # identities replanned per kind
    tasks_replanned: int = 0  # OPS-4: HubSpot tasks replanned
    rows_written: int = 0  # stored plan rows deleted + inserted
    seconds: dict[str, float] = field(default_factory=dict)
    elsewhere_peak_rss_mb: float | None = None  # the peak memory of the plan's second process, if it had one


class Unattributed(ValueError):
    """A plan frame whose rows name no identity (it cannot be replanned in part)."""


def fingerprint(settings: Settings) -> str:
    """What the stored plan depends on besides the state database's rows."""
    digest = hashlib.sha256(PLAN_VERSION.encode())
    digest.update(settings.connections.model_dump_json().encode())
    digest.update(settings.sync.model_dump_json().encode())
    return digest.hexdigest()


def _identity_maps(read: dict[str, pd.DataFrame]) -> dict[tuple[str, str], pd.Series]:
    """(kind, crm) -> that CRM's record id -> its identity, from the identities read."""
    out = {}
    for kind, table in (("contact", "contact_identities"), ("company", "company_identities"),
                        ("deal", "deal_identities")):  # fmt: skip
        frame = read[table]
        for crm in ("hubspot", "salesforce", "dynamics"):
            rows = frame[frame[f"{crm}_id"].notna()]
            out[(kind, crm)] = pd.Series(rows["identity_id"].astype(object).to_numpy(),
                                         index=rows[f"{crm}_id"].astype(str).to_numpy())
            out[(kind, crm)] = out[(kind, crm)][~out[(kind, crm)].index.duplicated()]
    return out


def attribute(part: str, rows: pd.DataFrame, maps: dict[tuple[str, str], pd.Series]) -> pd.Series:
    """The scope (``<kind>:<identity>``, or ``""`` for plan-wide rows) of each row of a plan frame."""
    n = len(rows)
    if not n:
        return pd.Series([], dtype=object)
    cols = rows.columns
    kind = (rows["object"] if "object" in cols else rows["kind"] if "kind" in cols else None)
    if kind is None:
        raise Unattributed(f"plan frame {part!r} has no object or kind column: {list(cols)}")
    kind = kind.astype(object).to_numpy()
    if part in WHOLE_PARTS:  # recomputed whole on every plan: one scope, replaced each time
        return pd.Series([WHOLE_PARTS[part]] * n, dtype=object)
    task = kind == "task"
    if task.any():  # OPS-4: a task's rows are its own (``task:<HubSpot task id>``), not an identity's
        rest = attribute(part, rows[~task], maps) if (~task).any() else pd.Series([], dtype=object)
        own = rows["source_id"] if "source_id" in cols else rows["id"]
        out = pd.Series(TASK + ":" + own.astype(str).to_numpy(), dtype=object)
        out[~task] = rest.to_numpy()
        return out
    identity = pd.Series([None] * n, dtype=object)
    if part == "associations" or "from_identity" in cols:
        owner = pd.Series(kind).map(_ASSOCIATION_FROM).to_numpy()
        return pd.Series(owner, dtype=object) + ":" + rows["from_identity"].astype(str).reset_index(drop=True)
    owner = pd.Series(kind).map(_ASSOCIATION_FROM).fillna(pd.Series(kind)).to_numpy()
    if "identity_id" in cols:  # association left-outs name the pair: their first record is ``source_id``
        pair = pd.Series(kind).isin(list(_ASSOCIATION_FROM)).to_numpy()
        ident = rows["identity_id"].astype(object).to_numpy()
        if "source_id" in cols:
            ident = np.where(pair, rows["source_id"].astype(object).to_numpy(), ident)
        identity = pd.Series(ident, dtype=object)
    # rows of a figure per identity (ROLL-2/3) name the identity itself: ``source_id`` / ``id`` under "rollup"
    for crm_col, id_col in (("source_crm", "source_id"), ("crm", "id")):
        if crm_col in cols and id_col in cols:
            direct = (rows[crm_col].astype(object) == "rollup").to_numpy() & identity.isna().to_numpy()
            identity[direct] = rows[id_col].astype(object).to_numpy()[direct]
    for crm_col, id_col in (("hubspot", "hubspot_id"), ("crm", "id"), ("source_crm", "source_id")):
        if id_col not in cols or crm_col not in (*cols, "hubspot"):
            continue
        missing = identity.isna().to_numpy()
        if not missing.any():
            break
        crms = np.full(n, "hubspot", dtype=object) if crm_col == "hubspot" else rows[crm_col].astype(object).to_numpy()
        ids = rows[id_col].astype(str).to_numpy()
        found = pd.Series([None] * n, dtype=object)
        for k in KINDS:
            for crm in ("hubspot", "salesforce", "dynamics"):
                at = missing & (owner == k) & (crms == crm)
                if at.any():
                    found[at] = pd.Series(ids[at]).map(maps[(k, crm)]).to_numpy()
        identity = identity.where(identity.notna(), found)
    scope = pd.Series(owner, dtype=object) + ":" + identity.astype(object).where(identity.notna(), "").astype(str)
    scope[identity.isna().to_numpy()] = UNATTRIBUTED
    scope[~pd.Series(owner).isin(KINDS).to_numpy()] = plan_store.GLOBAL
    return scope


def _scoped(plans: dict[str, TargetPlan], pipeline_inputs: pd.DataFrame, read: dict[str, pd.DataFrame],
            keep: set[str] | None) -> dict[tuple[str, str], pd.DataFrame]:
    """(target, part) -> the rows the stored plan keeps, with their ``scope`` (only those of the scopes in
    ``keep`` when given; plan-wide rows never: they are computed from the stored plan)."""
    maps = _identity_maps(read)
    kept = {}
    frames = [(target, part, getattr(plan, part)) for target, plan in plans.items() for part in stored_parts()]
    frames.append(("hubspot", PIPELINE_INPUTS, pipeline_inputs.assign(object="deal")))
    for target, part, rows in frames:
        if rows.empty:
            continue
        try:
            scope = attribute(part, rows, maps).to_numpy()
        except Unattributed:
            if keep is not None:
                raise
            scope = np.full(len(rows), UNATTRIBUTED, dtype=object)
        rows = rows.reset_index(drop=True)
        mine = (pd.Series(scope).isin(keep) if keep is not None else pd.Series(scope) != plan_store.GLOBAL).to_numpy()
        if not mine.all():
            rows, scope = rows[mine].reset_index(drop=True), scope[mine]
        if len(rows):
            kept[(target, part)] = rows.assign(scope=scope)
    return kept


def _encoded(target: str, part: str, rows: pd.DataFrame | None) -> pd.DataFrame:
    """One frame's rows (with their ``scope``) as ``plan_store`` stores them."""
    if rows is None or rows.empty:
        return _no_rows()
    encoded = plan_store.encode(rows.drop(columns="scope"))
    return encoded.assign(target_crm=target, part=part, scope=rows["scope"].to_numpy())


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ("target_crm", "part", "scope", "row", "row_hash")})


def summarize(frames: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """``plan_store.summarize`` of these rows, with each target's writes per action and object (part ``work``,
    dim ``calls``: ``<action>|<object>``; OPS-8)."""
    out = [plan_store.summarize(frames)]
    for target in TARGETS:
        mine = {part: frames[(target, part)] for part in parts() if (target, part) in frames}
        if not mine:
            continue
        empty = TargetPlan(crm=target)
        plan = TargetPlan(crm=target, **{part: mine[part].reindex(columns=getattr(empty, part).columns)
                                         if part in mine else getattr(empty, part) for part in parts()})
        sizes = plan.work().groupby(["action", "object"]).size()
        out.append(pd.DataFrame({"target_crm": target, "part": "work", "dim": "calls",
                                 "value": [f"{a}|{o}" for a, o in sizes.index], "n": sizes.to_numpy()}))
    return pd.concat([o for o in out if len(o)], ignore_index=True) if any(len(o) for o in out) else out[0]


def _rewritten(kept: dict[tuple[str, str], pd.DataFrame], changed: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The rows of ``kept`` (frames with their ``scope``) whose (target, part, scope) ``changed`` names."""
    out = {}
    for (target, part), scopes in changed.groupby(["target_crm", "part"], sort=False)["scope"]:
        rows = kept.get((target, part))
        if rows is not None:
            out[(target, part)] = rows[rows["scope"].isin(set(scopes))]
    return out


def _pipelines(engine: Engine, known: pd.DataFrame, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The HubSpot pipelines (and stages) the stored deal creates need (DEAL-3); ``known``: HubSpot's;
    ``inputs``: the deal creates just stored whole (a full plan), else read from the stored plan."""
    stored = inputs if inputs is not None else plan_store.read(engine, parts=[PIPELINE_INPUTS]).get(
        ("hubspot", PIPELINE_INPUTS))
    if stored is None or stored.empty:
        return concat(CREATE_COLUMNS, [])
    return concat(CREATE_COLUMNS, [pipeline_creates(stored.drop(columns="scope", errors="ignore"), known)])


def _digest(frame: pd.DataFrame) -> str:
    ordered = frame.sort_values(list(frame.columns), ignore_index=True) if len(frame.columns) else frame
    return hashlib.sha256(ordered.to_csv(index=False).encode()).hexdigest()


def stored_plan(engine: Engine, target: str, frames: Iterable[str]) -> TargetPlan:
    """``target``'s plan as stored, only its ``frames`` (the others empty): what its writes read."""
    stored = plan_store.read(engine, parts=list(frames), target=target)
    empty = TargetPlan(crm=target)
    return TargetPlan(crm=target, **{part: rows.reindex(columns=list(getattr(empty, part).columns))
                                     for (_, part), rows in stored.items()})  # fmt: skip


def stored_plans(engine: Engine) -> dict[str, TargetPlan]:
    """Target CRM -> its plan as stored (plan-wide rows first, then by identity); ``create_values`` empty
    (``NOT_STORED``)."""
    stored = plan_store.read(engine, parts=parts())
    out = {}
    for target in TARGETS:
        empty = TargetPlan(crm=target)
        frames = {}
        for part in parts():
            columns = list(getattr(empty, part).columns)
            rows = stored.get((target, part))
            frames[part] = getattr(empty, part) if rows is None else rows.reindex(columns=columns)
        out[target] = TargetPlan(crm=target, **frames)
    return out


def _task_marks(engine: Engine) -> dict[str, str | None] | None:
    """``task_inputs.task_marks`` at the last plan (None: no plan stored them)."""
    known = get_cursor(engine, *CURSOR, "task_inputs")
    try:
        marks = json.loads(known) if known else None
    except ValueError:
        return None
    return marks if isinstance(marks, dict) else None


def update_plans(engine: Engine, settings: Settings, *, full: bool = False) -> PlanUpdate:
    """Bring the stored plan up to date with the state database and return it (module docstring)."""
    clock = _Clock()
    history_row = int(get_cursor(engine, *CURSOR, "link_history_row") or 0)
    mark = get_cursor(engine, *CURSOR, "baselines_at")
    baselines_at = pd.Timestamp(mark) if mark else None
    last_seq, logged = plan_store.pending(engine)
    more, history_row, baselines_at = links_and_baselines(engine, history_row, baselines_at)
    current = fingerprint(settings)
    known = get_cursor(engine, *CURSOR, "fingerprint")
    reason = ("asked for" if full else "first plan" if known is None
              else "settings or plan version changed" if known != current
              else "a full unified update" if (logged["kind"] == "*").any() else "")
    marks, before = task_marks(engine), _task_marks(engine)
    reason = reason or ("" if before is not None else "no task marks stored")
    positions = (last_seq, history_row, baselines_at, current, marks)
    if not reason:
        linked = {kind: set(more.loc[more["kind"].isin(kinds), "record_id"].astype(str))
                  for kind, kinds in (("records", ["contact", "deal"]), ("tasks", ["task"]))}
        tasks = tasks_to_replan(engine, before, linked["records"], linked["tasks"])
        start = changed(engine, pd.concat([logged, more], ignore_index=True))
        if not any(start.sizes().values()) and not tasks:
            report = PlanUpdate("unchanged", "nothing changed since the last plan")
            return _finish(engine, report, positions, clock, inputs_changed=False)
        scope, read = reach(engine, start)
        scope.tasks = tasks
        seconds: dict[str, float] = {}
        clock.lap(seconds, "scope_s")
        plans, pipeline_inputs = compute_plans(engine, settings, read, scope, keep_values=False)
        try:
            kept = _scoped(plans, pipeline_inputs, read, scope.names())
        except Unattributed as err:
            reason = f"incremental plan impossible: {err}"
        else:
            report = PlanUpdate("incremental", f"{len(logged) + len(more)} changed records", scope.sizes(),
                                tasks_replanned=len(tasks), seconds=seconds)
            rows = pd.concat([_encoded(t, p, f) for (t, p), f in kept.items()] or [_no_rows()], ignore_index=True)
            clock.lap(report.seconds, "compute_s")
            with engine.begin() as conn:
                written = plan_store.write(conn, rows, scope.names(), _frames())
                # the counts move by what was rewritten: most replanned identities plan what they did before
                plan_store.add_summary(conn, summarize(_rewritten(kept, written.changed)), summarize(written.removed))
            report.rows_written = written.rows
            clock.lap(report.seconds, "write_s")
            return _finish(engine, report, positions, clock, inputs_changed=bool(
                written.changed["part"].eq(PIPELINE_INPUTS).any()))
    with planned_elsewhere(engine, settings) as elsewhere:
        read = read_tables(engine)
        report = PlanUpdate("full", reason, {f"{kind}s" if kind != "company" else "companies": len(
            read[f"{kind}_identities"]) for kind in KINDS})
        clock.lap(report.seconds, "read_s")
        plans, pipeline_inputs = compute_plans(engine, settings, read, keep_values=False, elsewhere=elsewhere)
        if elsewhere is not None:  # what the parts planned beside the rest took (``planned_elsewhere``)
            done = elsewhere.result()
            report.seconds["elsewhere_s"], report.elsewhere_peak_rss_mb = done.seconds, done.peak_rss_mb
    kept = _scoped(plans, pipeline_inputs, read, None)
    report.tasks_replanned = len(set().union(*(set(rows.loc[rows["scope"].astype(str).str.startswith(f"{TASK}:"),
                                                            "scope"]) for rows in kept.values())))
    counts = summarize(kept)
    clock.lap(report.seconds, "compute_s")
    del read, plans
    inputs = kept.get(("hubspot", PIPELINE_INPUTS))  # what the plan-wide pipelines are computed from (below)
    with engine.begin() as conn, plan_store.filling(conn) as empty:
        # a frame at a time, encoded as it is written: a first plan's rows encoded at once, beside the frames
        # they come from, were most of its memory; the server takes each slice in while the next is encoded
        with CopyBehind(conn) as copies:
            for target, part in _frames():
                written = plan_store.write(conn, _encoded(target, part, kept.pop((target, part), None)), None,
                                           [(target, part)], copies, empty=empty)
                report.rows_written += written.rows
        if not empty:
            report.rows_written += plan_store.drop_frames(conn, keep=_frames())  # frames an older plan version had
        plan_store.add_summary(conn, counts, None)  # the whole plan's counts but the plan-wide rows' (below)
    clock.lap(report.seconds, "write_s")
    # the pipeline inputs as just stored, not read back (a first plan's are a hundred thousand rows or more)
    return _finish(engine, report, positions, clock, replaced=True,
                   pipeline_inputs=pd.DataFrame() if inputs is None else inputs)


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()

    def lap(self, into: dict[str, float], name: str) -> None:
        now = time.perf_counter()
        into[name] = into.get(name, 0.0) + now - self.last
        self.last = now


def _finish(engine: Engine, report: PlanUpdate, positions: tuple, clock: _Clock, inputs_changed: bool = True,
            replaced: bool = False, pipeline_inputs: pd.DataFrame | None = None) -> PlanUpdate:
    """The plan-wide rows from the stored plan, when what they depend on changed (the stored deal creates
    into new pipelines, ``inputs_changed``; HubSpot's pipelines), and the positions moved on (``replaced``: the
    counts were just replaced by those of every other row; ``pipeline_inputs``: those deal creates as just
    stored, else they are read from the stored plan)."""
    last_seq, history_row, baselines_at, current, marks = positions
    known = unified.read(engine, "hubspot_pipelines")
    digest = _digest(known)
    due = replaced or inputs_changed or get_cursor(engine, *CURSOR, "hubspot_pipelines") != digest
    # before the transaction (SQLite: one connection at a time)
    pipelines = _pipelines(engine, known, pipeline_inputs) if due else None
    with engine.begin() as conn:
        if pipelines is not None:
            encoded = plan_store.encode(pipelines).assign(target_crm="hubspot", part="creates",
                                                          scope=plan_store.GLOBAL)
            written = plan_store.write(conn, encoded, {plan_store.GLOBAL}, [("hubspot", "creates")])
            report.rows_written += written.rows
            # a full plan's counts were just replaced by those of every other row: the plan-wide rows' are added
            # whole; else the counts move by what was rewritten
            new = summarize({("hubspot", "creates"): pipelines} if replaced or len(written.changed) else {})
            old = summarize({} if replaced else written.removed)
            plan_store.add_summary(conn, new, old)
        plan_store.consume(conn, last_seq)
        write_cursor(conn, *CURSOR, "link_history_row", str(history_row))
        if baselines_at is not None:
            write_cursor(conn, *CURSOR, "baselines_at", baselines_at.isoformat())
        write_cursor(conn, *CURSOR, "fingerprint", current)
        write_cursor(conn, *CURSOR, "hubspot_pipelines", digest)
        write_cursor(conn, *CURSOR, "task_inputs", json.dumps(marks))
    clock.lap(report.seconds, "plan_wide_s")
    report.seconds["total_s"] = time.perf_counter() - clock.started
    return report

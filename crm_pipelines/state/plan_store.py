"""The stored plan (issue 12) and the log of what ``unified`` changed since the plan last read it.

``plan_rows`` holds every target CRM's plan: one row per planned create, update, association, left-out
candidate or finding (any frame of ``sync/plan.TargetPlan``, stored by its field name as ``part``), under the
*scope* it was planned for: ``contact:<identity>``, ``company:<identity>``, ``deal:<identity>``, or ``""`` for
plan-wide rows (the HubSpot pipelines the deals need, DEAL-3). A plan replaces the rows of the scopes it
replanned and only where they differ (rows are compared by a hash of their content): nothing is dropped and
re-created. The writes issue executes what is stored here.

``plan_changes`` is appended by ``unified`` in the transaction that writes its result rows: the records its
tables and mirror delta touched, as (kind, crm, record id), ``crm`` being ``identity`` when the id is an
identity's. A full ``unified`` update appends one ``*`` row: everything may have changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.copy_behind import CopyBehind
from crm_pipelines.state.schema import plan_changes, plan_rows, plan_summary
from crm_pipelines.state.sql import copy_text, insert_frame, upsert

GLOBAL = ""  # the scope of plan-wide rows
_SCOPE_KEY = ("target_crm", "part", "scope")  # what a plan rewrites as a whole
_KEY = [*_SCOPE_KEY, "row_hash"]  # plan_rows' primary key
_CHUNK = 1_000

# what a record of a mirror object or a field table is part of
_OBJECT_KIND = {
    "contacts": "contact", "Contact": "contact", "Lead": "contact", "leads": "contact",
    "companies": "company", "Account": "company", "accounts": "company",
    "deals": "deal", "Opportunity": "deal", "opportunities": "deal",
}  # fmt: skip
# unified table -> the records a changed row of it belongs to: (kind, crm or "@<column naming the crm>", id column)
_TABLE_RECORDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "contact_identities": (("contact", "identity", "identity_id"),),
    "contact_members": (("contact", "identity", "identity_id"), ("contact", "@crm", "id")),
    "company_identities": (("company", "identity", "identity_id"),),
    "account_candidates": (("company", "hubspot", "hubspot_id"),),
    "deal_identities": (("deal", "identity", "identity_id"),),
    "deal_stages": (("deal", "@crm", "id"),),
    "deal_facts": (("deal", "hubspot", "deal_id"),),
    "contact_company": (("contact", "identity", "contact_identity"), ("company", "identity", "company_identity")),
    "deal_contact": (("deal", "identity", "deal_identity"), ("contact", "identity", "contact_identity")),
    "deal_company": (("deal", "identity", "deal_identity"), ("company", "identity", "company_identity")),
    "contact_lifecycle": (("contact", "hubspot", "id"),),
    "company_lifecycle": (("company", "hubspot", "id"),),
}  # fmt: skip
CHANGE_COLUMNS = ("kind", "crm", "record_id")


def table_records(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """The records (``CHANGE_COLUMNS``) the rows of a changed ``unified`` table belong to (none for tables the
    plan does not read)."""
    specs = _TABLE_RECORDS.get(table)
    if specs is None and table.startswith("fields_"):
        crm, _, obj = table.removeprefix("fields_").partition("_")
        kind = {k.lower(): v for k, v in _OBJECT_KIND.items()}.get(obj)
        specs = ((kind, crm, "id"),) if kind else None
    parts = []
    for kind, crm, column in specs or ():
        if column not in rows.columns or not len(rows):
            continue
        crms = rows[crm[1:]].astype(object) if crm.startswith("@") else crm
        parts.append(pd.DataFrame({"kind": kind, "crm": crms, "record_id": rows[column].astype(object)}))
    return _records(parts)


def mirror_records(crm: str, obj: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The records of a mirror delta (``CHANGE_COLUMNS``): a changed modification time changes the merge."""
    kind = _OBJECT_KIND.get(obj)
    if kind is None or "id" not in frame.columns:
        return _records([])
    return _records([pd.DataFrame({"kind": kind, "crm": crm, "record_id": frame["id"].astype(object)})])


def _records(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CHANGE_COLUMNS})
    out = pd.concat(parts, ignore_index=True).dropna()
    return out.astype({"record_id": str}).drop_duplicates(ignore_index=True)


def record_changes(conn: Connection, records: Iterable[pd.DataFrame]) -> int:
    """Append what changed (frames of ``CHANGE_COLUMNS``) in the caller's transaction; returns the rows."""
    out = _records(list(records))
    insert_frame(conn, plan_changes, out)
    return len(out)


def record_full(conn: Connection) -> None:
    """Everything may have changed (a full ``unified`` update): the next plan is a full one."""
    insert_frame(conn, plan_changes, pd.DataFrame({"kind": ["*"], "crm": ["*"], "record_id": ["*"]}))


def pending(engine: Engine) -> tuple[int, pd.DataFrame]:
    """The changes not consumed yet: the last seq and the records (``CHANGE_COLUMNS``). Every row left is one
    (``consume`` deletes what a plan took in): SQLite numbers a row after the highest one left, so once a plan
    consumed every row the numbering starts again at 1, below any seq a plan stored."""
    with engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(plan_changes.c.seq), 0))).scalar_one()
        rows = conn.execute(sa.select(plan_changes.c.kind, plan_changes.c.crm, plan_changes.c.record_id)
                            .where(plan_changes.c.seq <= last)).all()  # fmt: skip
    return int(last), pd.DataFrame.from_records(rows, columns=list(CHANGE_COLUMNS)).astype(object)


def consume(conn: Connection, upto: int) -> None:
    """The changes up to ``upto`` are in the stored plan: forget them."""
    conn.execute(plan_changes.delete().where(plan_changes.c.seq <= upto))


# -- the plan's rows ----------------------------------------------------------------------------------------


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """A plan frame's rows as ``row`` (JSON text, the frame's columns) and ``row_hash`` (of that text)."""
    if frame.empty:
        return pd.DataFrame({"row": pd.Series(dtype=object), "row_hash": pd.Series(dtype="int64")})
    # one JSON array of the rows, made by pandas' encoder (not a Python call per row), cut between its objects
    # (its ``lines=True`` does this cut in Python: 40% of the encoding); a value holding the cut's text would
    # cut too often: those frames take the slower way
    frame = frame.reset_index(drop=True)
    text = frame.to_json(orient="records", date_format="iso", date_unit="ms")
    cut = text[2:-2].split("},{")
    if len(cut) == len(frame):
        docs = pd.Series(["{" + d + "}" for d in cut], dtype=object)
    else:
        lines = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="ms")
        docs = pd.Series(lines.rstrip("\n").split("\n"), dtype=object)
    del text, cut
    # every document differs: hashed as they are (``categorize`` would first look for repeats, 5x slower);
    # the values are the same either way
    hashes = pd.util.hash_pandas_object(docs, index=False, categorize=False).to_numpy().view("int64")
    return pd.DataFrame({"row": docs.to_numpy(), "row_hash": hashes})


@dataclass
class Written:
    """What ``write`` changed: rows deleted + inserted; the (``target_crm``, ``part``, ``scope``) rewritten; the
    rows it deleted, decoded per (target, part) (what a plan's counts lose, without reading the rows it kept)."""

    rows: int = 0
    changed: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=list(_SCOPE_KEY)))
    removed: dict[tuple[str, str], pd.DataFrame] = dataclasses.field(default_factory=dict)


def write(conn: Connection, rows: pd.DataFrame, scopes: Iterable[str] | None,
          frames: Collection[tuple[str, str]] | None = None, copies: CopyBehind | None = None,
          empty: bool = False) -> Written:
    """Make the stored rows of ``scopes`` (every scope but the plan-wide one when None) exactly ``rows``
    (``target_crm``, ``part``, ``scope``, ``row``, ``row_hash``): a (target, part, scope) whose rows differ is
    rewritten, the others are not touched. ``frames``: every (target, part) the stored plan may hold under
    ``scopes`` (their rows are found through the primary key, which leads with those); with ``scopes`` None,
    only these frames' rows are compared (None: every frame's). ``copies``: the new rows are COPYed on that
    worker (``copy_behind.py``). ``empty``: the caller knows nothing is stored (``filling``): every row is new,
    nothing is read back."""
    if scopes is not None and frames is None:
        raise ValueError("plan_store.write: name the (target, part) frames the scopes may hold")
    # in the primary key's order, kept by the COPY below: the index grows at its end instead of at random pages
    # (half the COPY's time); sorted before the first statement, which waits for the last frame's COPY (a full
    # plan's rows are mostly new; an incremental plan's are few)
    # (an empty store has no index to grow while it is filled: ``filling``)
    rows = rows if empty else rows.sort_values(_KEY, ignore_index=True)
    # rows compared as two integers, (target, part, scope) hashed and the row's hash: a merge on the text
    # columns of a first plan's millions of rows cost several times more
    new_scope, row_hash = _scope_hashes(rows), rows["row_hash"].to_numpy()
    if empty:  # a row equal to another (same scope and content) is one row
        unique = ~pd.DataFrame({"s": new_scope, "h": row_hash}).duplicated().to_numpy()
    else:  # sorted, it follows the other
        unique = np.ones(len(rows), dtype=bool)
        unique[1:] = (new_scope[1:] != new_scope[:-1]) | (row_hash[1:] != row_hash[:-1])
    new, new_scope = (rows, new_scope) if unique.all() else (rows[unique].reset_index(drop=True), new_scope[unique])
    if empty:
        stored = _no_keys()
    else:
        named = new[["target_crm", "part"]].drop_duplicates().itertuples(index=False, name=None)
        stored = _stored_keys(conn, scopes, set(frames) if scopes is None and frames is not None
                              else {*(frames or ()), *named})
    stored_scope = _scope_hashes(stored)
    if stored.empty:  # nothing stored under these scopes (a first plan): every new row is written
        new_changed, stored_changed = np.ones(len(new), dtype=bool), np.zeros(0, dtype=bool)
    else:
        both = pd.DataFrame({"s": new_scope, "h": new["row_hash"].to_numpy()}).merge(
            pd.DataFrame({"s": stored_scope, "h": stored["row_hash"].to_numpy()}), how="outer", indicator=True)
        differ = pd.Index(both.loc[both["_merge"] != "both", "s"].unique())
        new_changed, stored_changed = differ.get_indexer(new_scope) >= 0, differ.get_indexer(stored_scope) >= 0
    first_new = new_changed & ~pd.Series(new_scope).duplicated().to_numpy()
    first_stored = stored_changed & ~pd.Series(stored_scope).duplicated().to_numpy()
    changed = pd.concat([new.loc[first_new, list(_SCOPE_KEY)], stored.loc[first_stored, list(_SCOPE_KEY)]],
                        ignore_index=True)
    changed = changed[~pd.Series(np.concatenate([new_scope[first_new], stored_scope[first_stored]])).duplicated()
                      .to_numpy()].reset_index(drop=True)
    out = Written(changed=changed)
    if changed.empty:
        return out
    had = stored[stored_changed]
    for (target, part), group in had.groupby(["target_crm", "part"], sort=False):
        names = group["scope"].drop_duplicates().tolist()
        docs = []
        for start in range(0, len(names), _CHUNK):
            # the deleted rows come back with the delete (both backends): a plan's counts subtract them
            docs += [r[0] for r in conn.execute(plan_rows.delete().where(
                plan_rows.c.target_crm == target, plan_rows.c.part == part,
                plan_rows.c.scope.in_(names[start : start + _CHUNK])).returning(plan_rows.c.row))]  # fmt: skip
        out.rows += len(docs)
        out.removed[(target, part)] = _frame([orjson.loads(d) if isinstance(d, str | bytes) else d for d in docs])
    fresh = new[new_changed]
    copy_text(conn, plan_rows, fresh[[*_KEY, "row"]], ["row"], copies)
    out.rows += len(fresh)
    return out


@contextmanager
def filling(conn: Connection) -> Iterator[bool]:
    """Around the writes of a whole plan in the caller's transaction: yields whether nothing is stored (a first
    plan; ``write``'s ``empty``). Then, on PostgreSQL, the primary key's index is dropped while the rows go in
    and built once at the end: a first plan's millions of rows each added to the index cost the server more
    than one sorted build. Other transactions wait for the table until this one ends (its ``ALTER TABLE``
    lock); a repeated key fails the build, and the transaction with it."""
    empty = conn.execute(sa.select(plan_rows.c.row_hash).limit(1)).first() is None
    key = _primary_key(conn) if empty and conn.dialect.name == "postgresql" else None
    if key is not None:
        conn.exec_driver_sql(f'ALTER TABLE "plan_rows" DROP CONSTRAINT "{key}"')
    yield empty
    if key is not None:
        # the build sorts every key: in memory where it fits (the server's default, 64 MB, spills to disk)
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        columns = ", ".join(f'"{c}"' for c in _KEY)
        conn.exec_driver_sql(f'ALTER TABLE "plan_rows" ADD CONSTRAINT "{key}" PRIMARY KEY ({columns})')


def _primary_key(conn: Connection) -> str | None:
    return conn.execute(sa.text("SELECT conname FROM pg_constraint WHERE conrelid = 'plan_rows'::regclass "
                                "AND contype = 'p'")).scalar()


def drop_frames(conn: Connection, keep: Collection[tuple[str, str]]) -> int:
    """Delete the rows of every (target, part) but ``keep``'s (and the plan-wide rows): frames a plan no longer
    has. Which frames are stored is read from the counts, not the rows."""
    stored = conn.execute(sa.select(plan_summary.c.target_crm, plan_summary.c.part).where(
        plan_summary.c.dim == "rows").distinct()).all()  # fmt: skip
    gone = sorted({(t, p) for t, p in stored} - set(keep))
    deleted = 0
    for target, part in gone:
        deleted += conn.execute(plan_rows.delete().where(plan_rows.c.target_crm == target, plan_rows.c.part == part,
                                                         plan_rows.c.scope != GLOBAL)).rowcount
    return deleted


def _frame(docs: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(docs).astype(object)
    return frame.where(frame.notna(), None)


def _scope_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's (``target_crm``, ``part``, ``scope``)."""
    if frame.empty:
        return np.zeros(0, dtype="int64")
    # not ``categorize``d: looking for repeats first costs more than it saves where most scopes differ
    return pd.util.hash_pandas_object(frame[list(_SCOPE_KEY)], index=False, categorize=False).to_numpy().view("int64")


def _stored_keys(conn: Connection, scopes: Iterable[str] | None, frames: set[tuple[str, str]]) -> pd.DataFrame:
    cols = [plan_rows.c.target_crm, plan_rows.c.part, plan_rows.c.scope, plan_rows.c.row_hash]
    if scopes is None:
        query = sa.select(*cols).where(plan_rows.c.scope != GLOBAL)
        if frames:
            query = query.where(sa.or_(*[sa.and_(plan_rows.c.target_crm == t, plan_rows.c.part == p)
                                         for t, p in sorted(frames)]))  # fmt: skip
        found = conn.execute(query).all()
    else:
        names = sorted(set(scopes))
        # each (target, part, scope) a probe of the primary key (both backends expand the IN lists)
        query = sa.select(*cols).where(plan_rows.c.target_crm.in_(sorted({t for t, _ in frames})),
                                       plan_rows.c.part.in_(sorted({p for _, p in frames})))
        found = [r for start in range(0, len(names), _CHUNK)
                 for r in conn.execute(query.where(plan_rows.c.scope.in_(names[start : start + _CHUNK])))]
    # plain tuples: pandas probes a SQLAlchemy Row's attributes one at a time (4 s for 350,000 rows)
    return _keys(pd.DataFrame([tuple(r) for r in found], columns=["target_crm", "part", "scope", "row_hash"]))


def _no_keys() -> pd.DataFrame:
    return _keys(pd.DataFrame({c: [] for c in _KEY}))


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"target_crm": object, "part": object, "scope": object, "row_hash": "int64"})


def read(engine_or_conn: Engine | Connection, parts: Iterable[str] | None = None,
         target: str | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """(target CRM, part) -> the stored rows as a frame (plan-wide rows first, then by scope), with a
    ``scope`` column; ``parts``: only these; ``target``: only that CRM's."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return read(conn, parts, target)
    conn = engine_or_conn
    # the document as text, parsed here (the driver's JSON parsing costs several times more)
    query = sa.select(plan_rows.c.target_crm, plan_rows.c.part, plan_rows.c.scope, sa.cast(plan_rows.c.row, sa.Text))
    if parts is not None:
        query = query.where(plan_rows.c.part.in_(list(parts)))
    if target is not None:
        query = query.where(plan_rows.c.target_crm == target)
    query = query.order_by(plan_rows.c.target_crm, plan_rows.c.part, plan_rows.c.scope, plan_rows.c.row_hash)
    found = conn.execute(query).all()
    out: dict[tuple[str, str], pd.DataFrame] = {}
    if not found:
        return out
    raw = pd.DataFrame([tuple(r) for r in found], columns=["target_crm", "part", "scope", "row"])
    for (target, part), group in raw.groupby(["target_crm", "part"], sort=False):
        frame = _frame([orjson.loads(v) if isinstance(v, str | bytes) else v for v in group["row"].tolist()])
        frame["scope"] = group["scope"].to_numpy()
        out[(target, part)] = frame
    return out


def counts(engine: Engine) -> Mapping[tuple[str, str], int]:
    """Stored rows per (target CRM, part)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(plan_rows.c.target_crm, plan_rows.c.part, sa.func.count())
                            .group_by(plan_rows.c.target_crm, plan_rows.c.part)).all()  # fmt: skip
    return {(t, p): int(n) for t, p, n in rows}


# -- the counts: a plan's metadata without reading its rows -------------------------------------------------

# columns counted per value wherever a frame has them
SUMMARY_COLUMNS = ("object", "kind", "object_type", "reason", "field", "decided_by", "conflict")
SUMMARY_KEY = ("target_crm", "part", "dim", "value")


def summarize(frames: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """(target, part) -> rows, as counts (``SUMMARY_KEY`` + ``n``): ``rows``; per value of each of
    ``SUMMARY_COLUMNS`` present; ``records``: distinct ``record_id`` per ``kind`` (a record's field updates are
    one write). Counts of disjoint sets of rows add up (a record belongs to one identity)."""
    out = []
    for (target, part), frame in frames.items():
        if frame is None or frame.empty:
            continue
        out.append(pd.DataFrame({"dim": ["rows"], "value": [""], "n": [len(frame)]}).assign(target_crm=target,
                                                                                             part=part))
        for col in SUMMARY_COLUMNS:
            if col in frame.columns:
                text = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
                counted = text.value_counts()
                out.append(pd.DataFrame({"dim": col, "value": counted.index.to_numpy(dtype=object),
                                         "n": counted.to_numpy()}).assign(target_crm=target, part=part))
        if "record_id" in frame.columns and "kind" in frame.columns:
            records = frame[["kind", "record_id"]].astype(str).drop_duplicates().groupby("kind").size()
            out.append(pd.DataFrame({"dim": "records", "value": records.index.to_numpy(dtype=object),
                                     "n": records.to_numpy()}).assign(target_crm=target, part=part))
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_KEY}).assign(n=pd.Series(dtype="int64"))
    return pd.concat(out, ignore_index=True)[[*SUMMARY_KEY, "n"]]


def add_summary(conn: Connection, new: pd.DataFrame, old: pd.DataFrame | None) -> None:
    """Add the counts of ``new`` rows and take away those of ``old`` (None: ``new`` is the whole plan's)."""
    if old is None:
        conn.execute(plan_summary.delete())
        insert_frame(conn, plan_summary, new.groupby(list(SUMMARY_KEY), as_index=False)["n"].sum())
        return
    both = pd.concat([new, old.assign(n=-old["n"])], ignore_index=True)
    delta = both.groupby(list(SUMMARY_KEY), as_index=False)["n"].sum()
    delta = delta[delta["n"] != 0]
    if delta.empty:
        return
    upsert(conn, plan_summary, delta.astype({"n": int}).to_dict("records"), key=list(SUMMARY_KEY), increment=["n"])
    conn.execute(plan_summary.delete().where(plan_summary.c.n == 0))


def summary(engine: Engine, target: str) -> pd.DataFrame:
    """The stored counts of one target's plan."""
    cols = [plan_summary.c[c] for c in (*SUMMARY_KEY, "n")]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*cols).where(plan_summary.c.target_crm == target)).all()
    return pd.DataFrame.from_records(rows, columns=[*SUMMARY_KEY, "n"])


# the stored updates that are conflicts (PostgreSQL): an index has this condition (``migrations._v10``), and
# serves a query that states it as written
CONFLICTS = "\"part\" = 'updates' AND (\"row\" ->> 'conflict') = 'true'"


def head(engine: Engine, target: str, part: str, n: int, conflicts: bool = False) -> pd.DataFrame:
    """The first ``n`` stored rows of one frame (as ``read`` orders them); ``conflicts``: only rows whose
    ``conflict`` is true (a part of updates: on PostgreSQL the condition, ``CONFLICTS``, names ``updates``)."""
    query = (sa.select(plan_rows.c.row).where(plan_rows.c.target_crm == target, plan_rows.c.part == part)
             .order_by(plan_rows.c.scope, plan_rows.c.row_hash).limit(n))  # fmt: skip
    with engine.connect() as conn:
        if conflicts:
            query = query.where(sa.text(CONFLICTS) if conn.dialect.name == "postgresql"
                                else plan_rows.c.row["conflict"].as_boolean().is_(True))
        docs = [orjson.loads(v) if isinstance(v, str | bytes) else v for (v,) in conn.execute(query)]
    frame = pd.DataFrame.from_records(docs).astype(object) if docs else pd.DataFrame()
    return frame.where(frame.notna(), None) if len(frame) else frame

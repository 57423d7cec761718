"""The ``unified`` result tables, declared: typed columns, keys and indexes, changed row by row.

Each table is declared once here (``TABLES``); ``schema.py`` turns the declarations into SQLAlchemy tables
and a migration step creates them. A run writes a table's change as "delete these keys, insert these rows"
(``TableChange`` of the incremental transform); a full recompute is first compared with what is stored, so
it too writes only the rows that differ. Nothing is ever dropped and re-created.

Besides what users read (identities, members, mappings, rollups, …) some tables hold the record-level
state an incremental run starts from (association pairs with their source, normalized domains, …); they
are ``internal``. Field values, whose columns depend on the configured mappings, are one JSON document per
record (``values``).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.sql import copy_out, insert_frame

PREFIX = "unified_"
CHUNK = 5_000
SLICE = 50_000  # rows normalized or copied at once by a full write
FIELD_OBJECTS = (
    ("hubspot", "contacts"), ("hubspot", "companies"), ("hubspot", "deals"),
    ("salesforce", "Contact"), ("salesforce", "Lead"), ("salesforce", "Account"), ("salesforce", "Opportunity"),
    ("dynamics", "contacts"), ("dynamics", "leads"), ("dynamics", "accounts"), ("dynamics", "opportunities"),
)  # fmt: skip


@dataclass(frozen=True)
class Declared:
    """One result table: ``columns`` as (name, kind) with kind one of ``id`` (a key or record id), ``text``,
    ``bool``, ``int``, ``float``, ``ts`` (UTC timestamp), ``json``; ``key``: what a change deletes by; the
    primary key is ``pk`` (default ``key``), or a surrogate ``row_id`` when no natural one is unique."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    pk: tuple[str, ...] | None = ()
    internal: bool = False

    @property
    def table(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def primary_key(self) -> tuple[str, ...] | None:
        """None: a surrogate ``row_id``."""
        return self.key if self.pk == () else self.pk

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """``"identity_id:id email hubspot_id:id linked:bool"`` (kind ``text`` when omitted)."""
    out = []
    for item in spec.split():
        name, _, kind = item.partition(":")
        out.append((name, kind or "text"))
    return tuple(out)


def _d(name: str, spec: str, key: str, pk: str | tuple | None = (), internal: bool = False) -> Declared:
    primary = tuple(pk.split()) if isinstance(pk, str) else pk
    return Declared(name, _cols(spec), tuple(key.split()), primary, internal)


_LINK = "hubspot_id:id salesforce_id:id salesforce_type dynamics_id:id dynamics_type"
TABLES: tuple[Declared, ...] = (
    _d("contact_identities", f"identity_id:id email {_LINK} linked:bool", "identity_id"),
    _d("contact_members", "crm:id type id:id email email_valid:bool identity_id:id role email_raw modified_at:ts "
       "converted_contact_id:id type_rank:int", "crm id"),
    _d("contact_findings", "crm:id type id:id email identity_id:id winner_id:id reason", "crm id"),
    _d("company_identities", "identity_id:id hubspot_id:id salesforce_id:id salesforce_method dynamics_id:id "
       "dynamics_method domain", "identity_id"),
    _d("company_findings", "crm:id id:id domain hubspot_id:id other_hubspot_id:id reason", "crm id", None),
    _d("account_candidates", "hubspot_id:id qualifies:bool reason", "hubspot_id"),
    _d("deal_identities", "identity_id:id hubspot_id:id salesforce_id:id dynamics_id:id linked:bool", "identity_id"),
    _d("deal_stages", "crm:id id:id pipeline stage is_closed:bool is_won:bool hubspot_pipeline hubspot_stage status "
       "hubspot_pipeline_label closed_mismatch:bool", "crm id"),
    _d("stage_proposals", "other_pipeline stage label hubspot_pipeline hubspot_stage hubspot_label score:float "
       "source crm", "crm other_pipeline", None),
    _d("owners", "email hubspot_owner_id:id salesforce_id:id dynamics_id:id", "email", None),
    *(_d(f"fields_{crm}_{obj.lower()}", "id:id values:json", "id") for crm, obj in FIELD_OBJECTS),
    _d("field_findings", "crm:id object:id id:id field:id value error", "crm object id", "crm object id field"),
    _d("contact_company", "contact_identity:id company_identity:id crm:id", "contact_identity company_identity crm"),
    _d("deal_contact", "deal_identity:id contact_identity:id crm:id", "deal_identity contact_identity crm"),
    _d("deal_company", "deal_identity:id company_identity:id crm:id", "deal_identity company_identity crm"),
    _d("deal_facts", "deal_id:id pipeline dealstage created_at:ts close_date:ts amount:float is_closed:bool "
       "is_won:bool", "deal_id"),
    _d("hubspot_deal_contacts", "deal_id:id contact_id:id", "deal_id contact_id"),
    _d("contact_rollups", "contact_id:id num_associated_deals:int first_deal_created_date:ts "
       "recent_deal_close_date:ts recent_deal_amount:float total_revenue:float", "contact_id"),
    _d("contact_lifecycle", "id:id lifecyclestage new_stage changed:bool rule", "id"),
    _d("company_lifecycle", "id:id lifecyclestage new_stage changed:bool", "id"),
    _d("hubspot_pipelines", "id:id modified_at:ts deleted:bool pipeline_id pipeline_label stage_id stage_label "
       "display_order probability is_closed:bool is_won:bool", "id", internal=True),
    # pairs are replaced per source record (crm, src): the record that states them
    _d("company_pair_src", "crm:id company_id:id contact_id:id src:id", "crm src", "crm src company_id contact_id",
       internal=True),
    _d("deal_contact_src", "crm:id deal_id:id contact_id:id src:id", "crm src", "crm src deal_id contact_id",
       internal=True),
    _d("deal_company_src", "crm:id deal_id:id company_id:id src:id", "crm src", "crm src deal_id company_id",
       internal=True),
    _d("company_domains", "crm:id id:id domain", "crm id", internal=True),
    _d("company_links", f"kind:id {_LINK}", "kind", None, internal=True),
)  # fmt: skip
BY_NAME = {d.name: d for d in TABLES}

# Text, not String(n): identity ids carry emails (up to 254 characters); byte order on PostgreSQL as elsewhere
_ID = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TYPES = {
    "id": lambda: _ID,
    "text": sa.Text,
    "bool": sa.Boolean,
    "int": sa.BigInteger,
    "float": sa.Float,
    "ts": lambda: sa.DateTime(timezone=True),
    "json": lambda: _JSON,
}


def sa_table(declared: Declared, metadata: sa.MetaData) -> sa.Table:
    pk = declared.primary_key
    columns = [sa.Column(name, _TYPES[kind](), primary_key=pk is not None and name in pk)
               for name, kind in declared.columns]  # fmt: skip
    if pk is None:
        columns.insert(0, sa.Column("row_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True))  # fmt: skip
    indexes = [] if pk is not None and tuple(pk[: len(declared.key)]) == declared.key else [
        sa.Index(f"ix_{declared.table}_key", *declared.key)]  # fmt: skip
    return sa.Table(declared.table, metadata, *columns, *indexes)


# -- values in one canonical form ---------------------------------------------------------------------------
#
# A frame from the transform and the same rows read back from either backend normalize to equal frames, so
# rows are compared by a vectorized hash of their normalized values; column by column, never row by row in
# Python (a full recompute compares millions of rows).

_TRUE = ["true", "1", "t", "yes"]


def normalize(declared: Declared, frame: pd.DataFrame) -> pd.DataFrame:
    """Every declared column in canonical form: text as ``str`` objects (None when missing), ``boolean``,
    ``Int64``, ``Float64``, ``datetime64[us, UTC]``, JSON as sorted-key JSON text."""
    n = len(frame)
    out = {}
    for name, kind in declared.columns:
        col = frame[name] if name in frame.columns else pd.Series([None] * n, dtype=object)
        col = col.reset_index(drop=True)
        if kind == "ts":
            if not isinstance(col.dtype, pd.DatetimeTZDtype):
                col = pd.to_datetime(col.astype(object).where(col.notna(), None), utc=True, errors="coerce",
                                     format="ISO8601")  # fmt: skip
            out[name] = col.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif kind == "bool":
            if col.dtype == bool:
                out[name] = col.astype("boolean")
            else:
                text = col.astype("string").str.strip().str.lower()
                out[name] = text.isin(_TRUE).astype("boolean").where(text.notna(), pd.NA)
        elif kind == "int":
            out[name] = pd.to_numeric(col, errors="coerce").astype("Float64").round().astype("Int64")
        elif kind == "float":
            out[name] = pd.to_numeric(col, errors="coerce").astype("Float64")
        elif kind == "json":
            out[name] = pd.Series([None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                                   else orjson.dumps(orjson.loads(v) if isinstance(v, str | bytes) else v,
                                                     option=orjson.OPT_SORT_KEYS).decode()
                                   for v in col.tolist()], dtype=object)  # fmt: skip
        else:
            if col.dtype == object and col.map(type).eq(str).all():
                out[name] = col
            else:
                text = col.astype("string")
                out[name] = text.astype(object).where(text.notna(), None)
    return pd.DataFrame(out)


def fingerprints(norm: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of a normalized frame."""
    if norm.empty:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_pandas_object(norm, index=False, categorize=False).to_numpy()


def _key_strings(norm: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    out = norm[key[0]].astype(object).where(norm[key[0]].notna(), "\x00").astype(str)
    for k in key[1:]:
        out = out + "\x1f" + norm[k].astype(object).where(norm[k].notna(), "\x00").astype(str)
    return out


def _typed(declared: Declared, norm: pd.DataFrame) -> pd.DataFrame:
    """A normalized frame with the dtypes the transform uses (plain ``bool``/``int64`` where nothing is
    missing, nanosecond timestamps, parsed JSON)."""
    frame = norm.copy()
    for name, kind in declared.columns:
        col = frame[name]
        if kind == "ts":
            frame[name] = col.astype("datetime64[ns, UTC]")
        elif kind == "bool":
            frame[name] = col.astype(bool) if not col.isna().any() else col
        elif kind == "int":
            frame[name] = col.astype("int64") if not col.isna().any() else col
        elif kind == "json":
            frame[name] = [None if v is None else orjson.loads(v) for v in col.tolist()]
    return frame




def field_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A field-values frame (``id`` + one column per mapped field) as ``id`` + ``values`` (JSON document)."""
    if frame.empty:
        return pd.DataFrame({"id": pd.Series(dtype=object), "values": pd.Series(dtype=object)})
    rest = frame.drop(columns="id")
    docs = orjson.loads(rest.to_json(orient="records", date_format="iso", date_unit="ms"))
    return pd.DataFrame({"id": frame["id"].astype(object).to_numpy(), "values": docs})


# -- moving rows in and out: COPY on PostgreSQL, executemany on SQLite ---------------------------------------


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _select(conn: Connection, declared: Declared, where: sa.ColumnElement | None = None,
            from_: sa.FromClause | None = None) -> pd.DataFrame:
    table = _table(declared)
    query = sa.select(*[table.c[c] for c in declared.names])
    if from_ is not None:
        query = query.select_from(from_)
    if where is not None:
        query = query.where(where)
    if _is_pg(conn):
        # the driver renders COPY's parameters in C: SQLAlchemy's literal rendering costs about 2 ms per 1,000
        # values, and an incremental run sends a hundred lookups of thousands
        return copy_out(conn, query, declared.names)
    rows = conn.execute(query).all()
    return pd.DataFrame.from_records(rows, columns=declared.names)


def _insert(conn: Connection, declared: Declared, norm: pd.DataFrame) -> None:
    """In slices of ``SLICE`` rows: each slice's COPY text is built whole in memory (4 bytes a character once
    read back from the buffer), which for 200,000 rows of field documents was a few hundred MB (issue 11)."""
    json_columns = [n for n, kind in declared.columns if kind == "json"]
    for start in range(0, len(norm), SLICE):
        insert_frame(conn, _table(declared), norm.iloc[start : start + SLICE], json_columns)


def _key_rows(key: Sequence[str], keys: list[tuple]) -> sa.FromClause:
    """PostgreSQL: the keys as rows to join with, ``unnest`` of one array per key column: the planner counts a
    constant array's elements, so the join is an index lookup per key, with no temporary table to create,
    fill, analyze and drop (a few statements each, twice per table an incremental run writes)."""
    arrays = [sa.literal([k[i] for k in keys], ARRAY(sa.Text)) for i in range(len(key))]
    return sa.func.unnest(*arrays).table_valued(*key).render_derived(name="_unified_keys")


@contextmanager
def _key_table(conn: Connection, key: Sequence[str], keys: list[tuple]) -> Iterator[sa.FromClause]:
    """The keys as rows to join with: a list of composite keys in ``IN`` makes PostgreSQL scan the whole table;
    a join with keys it can count is an index lookup per key. SQLite: a temporary table."""
    if _is_pg(conn):
        yield _key_rows(key, keys)
        return
    tmp = sa.Table("_unified_keys", sa.MetaData(), *[sa.Column(k, sa.Text) for k in key], prefixes=["TEMPORARY"])
    tmp.drop(conn, checkfirst=True)
    tmp.create(conn)
    insert_frame(conn, tmp, pd.DataFrame(keys, columns=list(key), dtype=object))
    try:
        yield tmp
    finally:
        tmp.drop(conn)


def _delete_keys(conn: Connection, table: sa.Table, key: Sequence[str], keys: list[tuple]) -> int:
    if not keys:
        return 0
    if len(key) == 1 and len(keys) <= 1000:
        return conn.execute(table.delete().where(table.c[key[0]].in_([k[0] for k in keys]))).rowcount or 0
    with _key_table(conn, key, keys) as rows:
        if _is_pg(conn):  # DELETE ... USING the key rows: a lookup per key
            stmt = table.delete().where(*[table.c[k] == rows.c[k] for k in key])
            return conn.execute(stmt).rowcount or 0
        cond = sa.tuple_(*[table.c[k] for k in key]).in_(sa.select(*[rows.c[k] for k in key]))
        return conn.execute(table.delete().where(cond)).rowcount or 0


def read(engine_or_conn: Engine | Connection, name: str, where: sa.ColumnElement | None = None,
         columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A declared table's rows (``where``: only those); ``columns``: only these (a million rows' text columns a
    reader does not use cost seconds)."""
    declared = BY_NAME[name]
    if columns is not None:
        unknown = set(columns) - set(declared.names)
        if unknown:
            raise KeyError(f"unified table {name!r} has no column(s) {sorted(unknown)}")
        declared = replace(declared, columns=tuple(c for c in declared.columns if c[0] in set(columns)))
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return _read(conn, declared, where)
    return _read(engine_or_conn, declared, where)


def _read(conn: Connection, declared: Declared, where: sa.ColumnElement | None) -> pd.DataFrame:
    raw = _select(conn, declared, where)
    if _is_pg(conn):
        return _typed_from_copy(declared, raw)
    return _typed(declared, normalize(declared, raw))


def _typed_from_copy(declared: Declared, raw: pd.DataFrame) -> pd.DataFrame:
    """``_typed(normalize(...))`` for PostgreSQL's CSV text (every value a string or NaN, booleans ``t``/``f``),
    converted column by column without the general path's checks: an incremental run reads a hundred small
    frames, where those checks cost more than the rows."""
    out = {}
    for name, kind in declared.columns:
        col = raw[name]
        missing = col.isna().to_numpy()
        if kind == "ts":
            out[name] = pd.to_datetime(col, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
        elif kind == "bool":
            flags = col.to_numpy(dtype=object) == "t"
            out[name] = pd.array(flags, dtype="boolean") if missing.any() else flags
            if missing.any():
                out[name][missing] = pd.NA
        elif kind == "int":
            number = pd.to_numeric(col)
            out[name] = number.astype("Int64") if missing.any() else number.astype("int64")
        elif kind == "float":
            out[name] = pd.to_numeric(col).astype("Float64")
        elif kind == "json":
            out[name] = pd.Series([None if m else orjson.loads(v) for v, m in zip(col.tolist(), missing, strict=True)],
                                  dtype=object)
        else:
            values = col.to_numpy(dtype=object)
            out[name] = pd.Series(np.where(missing, None, values) if missing.any() else values, dtype=object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(raw)))


def tally(conn: Connection, name: str, where: sa.ColumnElement | None, by: Sequence[sa.ColumnElement],
          sample: Sequence[sa.ColumnElement], order: Sequence[sa.ColumnElement], n: int
          ) -> tuple[dict[tuple, int], pd.DataFrame]:
    """What an asset check shows of a stored table, computed by the database (the tables hold millions of rows):
    the rows ``where`` selects counted per ``by``, and ``sample``'s columns of the first ``n`` in ``order``."""
    table = _table(BY_NAME[name])
    counts = sa.select(*by, sa.func.count()).select_from(table).group_by(*by)
    head = sa.select(*sample).select_from(table).order_by(*order).limit(n)
    if where is not None:
        counts, head = counts.where(where), head.where(where)
    by_group = {tuple(row[:-1]): int(row[-1]) for row in conn.execute(counts)}
    rows = conn.execute(head).all() if sample and n else []
    return by_group, pd.DataFrame(rows, columns=[c.name for c in sample])


def column(name: str, col: str) -> sa.Column:
    """A declared table's column, for the filters callers pass to ``read``."""
    return _table(BY_NAME[name]).c[col]


def _table(declared: Declared) -> sa.Table:
    from crm_pipelines.state.schema import UNIFIED_TABLES

    return UNIFIED_TABLES[declared.name]


# -- writing -----------------------------------------------------------------------------------------------


def _keys_of(norm: pd.DataFrame, key: Sequence[str]) -> list[tuple]:
    return list(dict.fromkeys(zip(*[norm[k].astype(object).where(norm[k].notna(), None) for k in key],
                                  strict=True)))  # fmt: skip


def rows_at_keys(conn: Connection, name: str, *frames: pd.DataFrame) -> pd.DataFrame:
    """The stored rows (normalized) whose key is one of the keys in ``frames``."""
    declared = BY_NAME[name]
    table = _table(declared)
    keyed = Declared(name, tuple((k, dict(declared.columns)[k]) for k in declared.key), declared.key)
    keys = list(dict.fromkeys(k for f in frames if len(f) for k in _keys_of(normalize(keyed, f), declared.key)))
    if not keys:
        return normalize(declared, pd.DataFrame(columns=declared.names))
    if len(declared.key) == 1 and len(keys) <= 1000:
        raw = _select(conn, declared, table.c[declared.key[0]].in_([k[0] for k in keys]))
    else:
        with _key_table(conn, declared.key, keys) as tmp:
            joined = table.join(tmp, sa.and_(*[table.c[k] == tmp.c[k] for k in declared.key]))
            raw = _select(conn, declared, from_=joined)
    return normalize(declared, raw)


def fingerprint_rows(name: str, frame: pd.DataFrame) -> list[int]:
    """Row hashes of ``frame`` as stored (for comparing tables)."""
    declared = BY_NAME[name]
    return fingerprints(normalize(declared, frame)).tolist()


def _rewrite(conn: Connection, declared: Declared, new: pd.DataFrame, changed: pd.Series, had_rows: bool) -> int:
    """Delete the stored rows of the ``changed`` keys (key strings) and insert ``new``'s rows of them."""
    if not len(changed):
        return 0
    rows = new[_key_strings(new, declared.key).isin(changed).to_numpy()] if len(new) else new
    deleted = 0
    if had_rows:
        keys = sorted({tuple(None if p == "\x00" else p for p in k.split("\x1f")) for k in changed})
        deleted = _delete_keys(conn, _table(declared), declared.key, keys)
    _insert(conn, declared, rows)
    return deleted + len(rows)


def write_change(conn: Connection, name: str, removed: pd.DataFrame, added: pd.DataFrame,
                 changed_rows: list[pd.DataFrame] | None = None, stored: pd.DataFrame | None = None) -> int:
    """After this, the rows of every key in ``removed`` or ``added`` are exactly ``added``'s rows of that key.
    Keys whose stored rows already are those rows are not touched; returns the rows written (deleted +
    inserted), so re-deriving an unchanged record costs a read and writes nothing. ``changed_rows``: gets the
    rows of the keys that did change, as they were and as they are (what the plan replans, issue 12).
    ``stored``: ``rows_at_keys(conn, name, removed, added)`` when the caller read it already."""
    declared = BY_NAME[name]
    new = normalize(declared, added)
    stored = rows_at_keys(conn, name, removed, added) if stored is None else stored
    changed = _changed_keys(declared, stored, new, removed)
    if changed_rows is not None and len(changed):
        for rows in (stored, new):
            if len(rows):
                changed_rows.append(rows[_key_strings(rows, declared.key).isin(changed).to_numpy()])
    return _rewrite(conn, declared, new, changed, len(stored) > 0)


def _changed_keys(declared: Declared, old: pd.DataFrame, new: pd.DataFrame,
                  removed: pd.DataFrame | None = None) -> pd.Series:
    """Key strings whose rows differ between ``old`` and ``new`` (and every key of ``removed`` that has rows
    in ``old`` but none in ``new``)."""
    old_fp, new_fp = fingerprints(old), fingerprints(new)
    parts = []
    if len(old):
        parts.append(_key_strings(old[~np.isin(old_fp, new_fp)], declared.key))
    if len(new):
        parts.append(_key_strings(new[~np.isin(new_fp, old_fp)], declared.key))
    if removed is not None and len(removed) and len(old):
        keyed = Declared(declared.name, tuple((k, dict(declared.columns)[k]) for k in declared.key), declared.key)
        gone = _key_strings(normalize(keyed, removed), declared.key)
        kept = set(_key_strings(new, declared.key)) if len(new) else set()
        parts.append(gone[gone.isin(set(_key_strings(old, declared.key))) & ~gone.isin(kept)])
    if not parts:
        return pd.Series([], dtype=object)
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def replace_by_difference(conn: Connection, name: str, frame: pd.DataFrame | Iterable[pd.DataFrame]) -> int:
    """Make the table hold exactly ``frame``, touching only the keys whose rows differ (a full recompute);
    returns the rows written (deleted + inserted). ``frame`` may come as its parts, one after another: each is
    normalized as it comes, so only the compact form of the whole table exists (field documents, issue 11).

    The stored rows are compared a chunk at a time (``_stored_chunks``): of a table of millions of rows only
    their hashes and the keys of the rows that differ stay in memory (issue 11)."""
    declared = BY_NAME[name]
    if declared.primary_key is not None and _is_empty(conn, declared):
        return _insert_parts(conn, declared, frame)
    if isinstance(frame, pd.DataFrame):
        new = normalize(declared, frame)
    else:
        parts = [normalize(declared, part) for part in frame]
        new = pd.concat(parts, ignore_index=True) if parts else normalize(declared, pd.DataFrame())
    if declared.primary_key is None:  # no natural key: a changed table is rewritten whole (they are small)
        old = normalize(declared, _select(conn, declared))
        if sorted(fingerprints(old).tolist()) == sorted(fingerprints(new).tolist()):
            return 0
        conn.execute(_table(declared).delete())
        _insert(conn, declared, new)
        return len(old) + len(new)
    new_fp = np.sort(fingerprints(new))
    old_fps, stale = [], []
    for raw in _stored_chunks(conn, declared):
        old = normalize(declared, raw)
        fp = fingerprints(old)
        old_fps.append(fp)
        differs = ~_member(new_fp, fp)
        if differs.any():
            stale.append(_key_strings(old[differs], declared.key))
    if not old_fps:  # nothing stored: every row is new
        _insert(conn, declared, new)
        return len(new)
    old_fp = np.sort(np.concatenate(old_fps))
    fresh = ~_member(old_fp, fingerprints(new))
    parts = [*stale, _key_strings(new[fresh], declared.key)] if fresh.any() else stale
    changed = pd.concat(parts, ignore_index=True).drop_duplicates() if parts else pd.Series([], dtype=object)
    return _rewrite(conn, declared, new, changed, True)


def _is_empty(conn: Connection, declared: Declared) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(_table(declared)).limit(1)).first() is None


def _insert_parts(conn: Connection, declared: Declared, frame: pd.DataFrame | Iterable[pd.DataFrame]) -> int:
    """An empty table (the first full update) takes every row: each ``SLICE`` of them is normalized and
    copied in turn, so no normalized copy of the whole table exists (issue 11)."""
    parts = (frame.iloc[i : i + SLICE] for i in range(0, len(frame), SLICE)) if isinstance(frame, pd.DataFrame) \
        else frame
    written = 0
    for part in parts:
        norm = normalize(declared, part)
        _insert(conn, declared, norm)
        written += len(norm)
    return written


def _member(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_values)`` for an array sorted once and probed chunk after chunk."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def _stored_chunks(conn: Connection, declared: Declared, rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """The stored rows as raw frames of at most ``rows`` rows (as ``_select`` reads them; none when empty).
    PostgreSQL: COPY into a temporary file, parsed a chunk at a time."""
    table = _table(declared)
    query = sa.select(*[table.c[c] for c in declared.names])
    if not _is_pg(conn):
        result = conn.execution_options(yield_per=rows).execute(query)
        for part in result.partitions():
            yield pd.DataFrame.from_records(part, columns=declared.names)
        return
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    with tempfile.TemporaryFile() as buf:
        conn.connection.driver_connection.cursor().copy_expert(
            f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, NULL '\\N')", buf)  # fmt: skip
        if not buf.tell():
            return
        buf.seek(0)
        yield from pd.read_csv(buf, header=None, names=declared.names, dtype=str, keep_default_na=False,
                               na_values=["\\N"], quoting=csv.QUOTE_MINIMAL, chunksize=rows, encoding="utf-8")

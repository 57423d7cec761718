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

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

PREFIX = "unified_"
CHUNK = 5_000
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


# -- values as stored, and back ----------------------------------------------------------------------------


def _stored(declared: Declared, frame: pd.DataFrame) -> list[dict]:
    """Rows as the database takes them: None for every missing value, Python scalars, JSON documents."""
    out: dict[str, list] = {}
    n = len(frame)
    for name, kind in declared.columns:
        if name not in frame.columns:
            out[name] = [None] * n
            continue
        col = frame[name]
        if kind == "ts":
            ts = pd.to_datetime(col, utc=True, errors="coerce")
            values = ts.astype(object).where(ts.notna(), None).tolist()
        elif kind == "json":
            values = col.tolist()
        elif kind == "bool":
            values = [_bool(v) for v in col.astype(object).tolist()]
        elif kind in ("int", "float"):
            num = pd.to_numeric(col, errors="coerce").astype("float64")
            cast = int if kind == "int" else float
            values = [None if np.isnan(v) else cast(v) for v in num.to_numpy()]
        else:
            obj = col.astype(object)
            values = [None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                      for v in obj.tolist()]  # fmt: skip
        out[name] = values
    names = list(out)
    return [dict(zip(names, row, strict=True)) for row in zip(*out.values(), strict=True)] if n else []


def _bool(value: object) -> bool | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):  # APIs spell booleans as text too ("false" must not become True)
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def field_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A field-values frame (``id`` + one column per mapped field) as ``id`` + ``values`` (JSON document)."""
    if frame.empty:
        return pd.DataFrame({"id": pd.Series(dtype=object), "values": pd.Series(dtype=object)})
    rest = frame.drop(columns="id")
    docs = orjson.loads(rest.to_json(orient="records", date_format="iso", date_unit="ms"))
    return pd.DataFrame({"id": frame["id"].astype(object).to_numpy(), "values": docs})


def _typed(declared: Declared, rows: Sequence[Sequence], names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=names)
    for name, kind in declared.columns:
        col = frame[name]
        if kind == "ts":
            frame[name] = pd.to_datetime(col, utc=True).astype("datetime64[ns, UTC]")
        elif kind == "bool":
            frame[name] = col.astype("boolean") if col.isna().any() else col.astype(bool)
        elif kind == "int":
            frame[name] = col.astype("int64") if len(col) and not col.isna().any() else col.astype("Int64")
        elif kind == "float":
            frame[name] = pd.to_numeric(col).astype("Float64")
        else:
            frame[name] = col.astype(object).where(col.notna(), None)
    return frame


def read(engine_or_conn: Engine | Connection, name: str, where: sa.ColumnElement | None = None) -> pd.DataFrame:
    declared = BY_NAME[name]
    table = _table(declared)
    query = sa.select(*[table.c[c] for c in declared.names])
    if where is not None:
        query = query.where(where)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = engine_or_conn.execute(query).all()
    return _typed(declared, rows, declared.names)


def column(name: str, col: str) -> sa.Column:
    """A declared table's column, for the filters callers pass to ``read``."""
    return _table(BY_NAME[name]).c[col]


def _table(declared: Declared) -> sa.Table:
    from crm_pipelines.state.schema import UNIFIED_TABLES

    return UNIFIED_TABLES[declared.name]


# -- writing -----------------------------------------------------------------------------------------------


def _row_keys(rows: Iterable[Mapping], key: Sequence[str]) -> list[tuple]:
    return list(dict.fromkeys(tuple(r[k] for k in key) for r in rows))


def _delete_keys(conn: Connection, table: sa.Table, key: Sequence[str], keys: list[tuple]) -> int:
    deleted = 0
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        if len(key) == 1:
            cond = table.c[key[0]].in_([k[0] for k in chunk])
        else:
            cond = sa.tuple_(*[table.c[k] for k in key]).in_(chunk)
        deleted += conn.execute(table.delete().where(cond)).rowcount or 0
    return deleted


def write_change(conn: Connection, name: str, removed: pd.DataFrame, added: pd.DataFrame) -> int:
    """After this, the rows of every key in ``removed`` or ``added`` are exactly ``added``'s rows of that key.
    Keys whose stored rows already are those rows are not touched; returns the rows written (deleted +
    inserted), so re-deriving an unchanged record costs a read and writes nothing."""
    declared = BY_NAME[name]
    table = _table(declared)
    key = declared.key
    new = _stored(declared, added)
    kinds = dict(declared.columns)
    gone = _stored(Declared(name, tuple((k, kinds[k]) for k in key), key), removed)
    keys = list(dict.fromkeys(_row_keys(gone, key) + _row_keys(new, key)))
    if not keys:
        return 0
    stored = _stored(declared, rows_at_keys(conn, name, pd.DataFrame(keys, columns=list(key))))
    want: dict[tuple, list[bytes]] = {k: [] for k in keys}
    have: dict[tuple, list[bytes]] = {k: [] for k in keys}
    for rows, into in ((new, want), (stored, have)):
        for row, fp in zip(rows, _fingerprints(declared, rows), strict=True):
            into.setdefault(tuple(row[k] for k in key), []).append(fp)
    changed = {k for k in keys if sorted(want[k]) != sorted(have.get(k, []))}
    if not changed:
        return 0
    deleted = _delete_keys(conn, table, key, list(changed))
    rows = [r for r in new if tuple(r[k] for k in key) in changed]
    for start in range(0, len(rows), CHUNK):
        conn.execute(table.insert(), rows[start : start + CHUNK])
    return deleted + len(rows)


def _fingerprints(declared: Declared, rows: list[dict]) -> pd.Series:
    """One digest per row of its stored values (orjson of the row), to compare what is with what should be."""
    return pd.Series([hashlib.blake2b(orjson.dumps([r[c] for c in declared.names], default=str,
                                                   option=orjson.OPT_SORT_KEYS), digest_size=12).digest()
                      for r in rows], dtype=object)  # fmt: skip


def replace_by_difference(conn: Connection, name: str, frame: pd.DataFrame) -> int:
    """Make the table hold exactly ``frame``, touching only the keys whose rows differ (a full recompute);
    returns the rows written (deleted + inserted)."""
    declared = BY_NAME[name]
    table = _table(declared)
    new = _stored(declared, frame)
    current = conn.execute(sa.select(*[table.c[c] for c in declared.names])).all()
    old = _stored(declared, pd.DataFrame.from_records(current, columns=declared.names)) if current else []
    old_fp, new_fp = _fingerprints(declared, old), _fingerprints(declared, new)
    if declared.primary_key is None:  # no natural key: a changed table is rewritten whole (they are small)
        if sorted(old_fp) == sorted(new_fp):
            return 0
        conn.execute(table.delete())
        for start in range(0, len(new), CHUNK):
            conn.execute(table.insert(), new[start : start + CHUNK])
        return len(old) + len(new)
    old_set, new_set = set(old_fp), set(new_fp)
    key = declared.key
    changed = {tuple(r[k] for k in key) for r, fp in zip(old, old_fp, strict=True) if fp not in new_set}
    changed |= {tuple(r[k] for k in key) for r, fp in zip(new, new_fp, strict=True) if fp not in old_set}
    if not changed:
        return 0
    deleted = _delete_keys(conn, table, key, list(changed))
    rows = [r for r in new if tuple(r[k] for k in key) in changed]
    for start in range(0, len(rows), CHUNK):
        conn.execute(table.insert(), rows[start : start + CHUNK])
    return deleted + len(rows)


def rows_at_keys(conn: Connection, name: str, *frames: pd.DataFrame) -> pd.DataFrame:
    """The stored rows whose key is one of the keys in ``frames`` (for comparing with expected rows)."""
    declared = BY_NAME[name]
    table = _table(declared)
    kinds = dict(declared.columns)
    keyed = Declared(name, tuple((k, kinds[k]) for k in declared.key), declared.key)
    keys = list(dict.fromkeys(k for f in frames if len(f) for k in _row_keys(_stored(keyed, f), declared.key)))
    rows = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        cond = (table.c[declared.key[0]].in_([k[0] for k in chunk]) if len(declared.key) == 1
                else sa.tuple_(*[table.c[k] for k in declared.key]).in_(chunk))  # fmt: skip
        rows += conn.execute(sa.select(*[table.c[c] for c in declared.names]).where(cond)).all()
    return pd.DataFrame.from_records(rows, columns=declared.names)


def fingerprint_rows(name: str, frame: pd.DataFrame) -> list[bytes]:
    declared = BY_NAME[name]
    return list(_fingerprints(declared, _stored(declared, frame)))

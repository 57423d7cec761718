"""Dialect-aware statements both backends need (SQLite and PostgreSQL spell upserts alike, not identically),
and reads run side by side where the backend gains from it (PostgreSQL; SQLite reads in-process)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from pandas.api.types import is_integer_dtype
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.copy_behind import CopyBehind, copy_now

PG_PAGE = 5_000  # rows per INSERT statement on PostgreSQL
SIDE_BY_SIDE = 4  # reads at once on PostgreSQL (within the engine's pool of 5)

Item = TypeVar("Item")
Read = TypeVar("Read")


def side_by_side(engine: Engine, read: Callable[[Connection, Item], Read], items: Sequence[Item]) -> list[Read]:
    """``read(conn, item)`` of every item, in order. On PostgreSQL the reads run side by side, each on a connection
    of its own (a read on the sync path is mostly the server's time); on SQLite one after another on one
    connection, its reads being in-process anyway."""
    if engine.dialect.name != "postgresql" or len(items) < 2:
        with engine.connect() as conn:
            return [read(conn, item) for item in items]

    def one(item: Item) -> Read:
        with engine.connect() as conn:
            return read(conn, item)

    with ThreadPoolExecutor(max_workers=min(SIDE_BY_SIDE, len(items))) as pool:
        return list(pool.map(one, items))


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    increment: Sequence[str] = (),
    newer: str | None = None,
    same_unless: Sequence[str] = (),
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: columns in ``increment`` are added to, the rest replaced.

    With ``newer``, a stored row is replaced only when the incoming value of that column is not older, so a
    slow run can never overwrite a fresher version written meanwhile by another. With ``same_unless`` as
    well, a row whose ``newer`` value and ``same_unless`` columns all equal the stored row's is left as it is,
    so its other columns (a write stamp) keep their values when the same version is read again.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _pg_upsert(conn, table, rows, key, increment, newer, same_unless)
        return
    stmt = sqlite.insert(table)
    updates = {
        c: (table.c[c] + stmt.excluded[c]) if c in increment else stmt.excluded[c] for c in rows[0] if c not in key
    }
    where = None
    if newer is not None:
        stored, incoming = table.c[newer], stmt.excluded[newer]
        where = sa.or_(stored.is_(None), incoming.is_(None), stored <= incoming)
        if same_unless:
            changed = sa.or_(*[table.c[c].is_distinct_from(stmt.excluded[c]) for c in same_unless])
            where = sa.or_(sa.and_(stored.is_distinct_from(incoming),
                                   sa.or_(stored.is_(None), incoming.is_(None), stored < incoming)),
                           sa.and_(stored.is_not_distinct_from(incoming), changed))  # fmt: skip
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=updates, where=where), list(rows))


def _pg_upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    increment: Sequence[str],
    newer: str | None,
    same_unless: Sequence[str],
) -> None:
    """One array per column, unnested by the server: thousands of rows per statement and round trip, the
    values quoted by psycopg2's C adapters. ``execute_values`` spells every row out in Python instead
    (22,000 against 30,000 to 48,000 HubSpot contacts a second, measured), and compiling
    multi-row statements in SQLAlchemy costs more than the insert. Identifiers are quoted by the dialect;
    values travel as bind parameters."""
    columns = list(rows[0])
    q = conn.dialect.identifier_preparer.quote
    name = q(table.name)
    sets = ", ".join(
        f"{q(c)} = {name}.{q(c)} + EXCLUDED.{q(c)}" if c in increment else f"{q(c)} = EXCLUDED.{q(c)}"
        for c in columns
        if c not in key
    )
    arrays = ", ".join(f"%s::{_array_type(table.c[c].type, conn.dialect)}" for c in columns)
    sql = (
        f"INSERT INTO {name} ({', '.join(q(c) for c in columns)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(q(k) for k in key)}) DO UPDATE SET {sets}"
    )
    if newer is not None:
        n = q(newer)
        if same_unless:
            distinct = " OR ".join(f"{name}.{q(c)} IS DISTINCT FROM EXCLUDED.{q(c)}" for c in same_unless)
            # the same version (both times equal, or both missing) is rewritten only when its content differs
            sql += (f" WHERE ({name}.{n} IS DISTINCT FROM EXCLUDED.{n} AND ({name}.{n} IS NULL"
                    f" OR EXCLUDED.{n} IS NULL OR {name}.{n} < EXCLUDED.{n}))"
                    f" OR ({name}.{n} IS NOT DISTINCT FROM EXCLUDED.{n} AND ({distinct}))")
        else:
            sql += f" WHERE {name}.{n} IS NULL OR EXCLUDED.{n} IS NULL OR {name}.{n} <= EXCLUDED.{n}"
    json_columns = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}
    cursor = conn.connection.driver_connection.cursor()
    try:
        for i in range(0, len(rows), PG_PAGE):
            page = rows[i : i + PG_PAGE]
            cursor.execute(
                sql,
                [[_dumps(r[c]) for r in page] if c in json_columns else [r[c] for r in page] for c in columns],
            )
    finally:
        cursor.close()


def _array_type(column_type: sa.types.TypeEngine, dialect: sa.engine.Dialect) -> str:
    if isinstance(column_type, sa.JSON):
        return "jsonb[]"  # sent as JSON text
    if isinstance(column_type, sa.String):
        return "text[]"  # the column's own length and collation apply on insert
    return f"{column_type.compile(dialect=dialect)}[]"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def ids_in_ranges(conn: Connection, table: sa.Table, prefixes: Sequence[str], *where: Any) -> list[str]:
    """Ids of ``table`` that start with one of ``prefixes`` (and match ``where``), each prefix read as a range
    of the primary-key index. Written as one OR of ranges, both planners scan the whole table instead (PostgreSQL
    took 360 ms for 200 prefixes among 124,000 HubSpot links, against 1 ms this way)."""
    if not prefixes:
        return []
    ranges = [(p, p + "\uffff") for p in prefixes]
    if conn.dialect.name == "postgresql":
        # a VALUES list joined by range: one statement, an index scan per row (SQLite cannot name VALUES columns)
        bounds = sa.values(sa.column("lo", sa.String), sa.column("hi", sa.String), name="bounds").data(ranges)
        joined = table.join(bounds, sa.and_(table.c.id >= bounds.c.lo, table.c.id < bounds.c.hi))
        stmt: sa.Executable = sa.select(table.c.id).select_from(joined).where(*where)
    else:
        stmt = sa.union_all(
            *[sa.select(table.c.id).where(table.c.id >= lo, table.c.id < hi, *where) for lo, hi in ranges]
        )
    return [r[0] for r in conn.execute(stmt)]


def vacuum_analyze(engine: Engine, tables: Iterable[str]) -> None:
    """PostgreSQL: ``VACUUM (ANALYZE)`` of ``tables`` after a bulk write (a full ``unified`` update), so that
    what autovacuum would do in the minutes after it is done now, unthrottled, instead of beside the runs that
    follow:
    - planner statistics: until autovacuum gathered them, the next incremental run's lookup of a few hundred
      keys in a million rows just written was a sequential scan and a sort (1,007 ms; 13 ms after, issue 11);
    - the visibility map and hint bits: autovacuum vacuumed the same tables, throttled, over the minute after
      the full update at a million people, the minute in which the first plan (issue 12) reads them whole.
    A full update reports what this took (``vacuum_s``). Neither blocks readers or writers. SQLite: nothing
    (no autovacuum; its planner needs no statistics for these key lookups)."""
    if engine.dialect.name != "postgresql":
        return
    # VACUUM cannot run inside a transaction block
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in dict.fromkeys(tables):
            conn.exec_driver_sql(f'VACUUM (ANALYZE) "{table}"')


# ids per lookup on SQLite (PostgreSQL takes them as one array); past ``_WHOLE`` ids (a full plan's links and
# baselines at a million people) a table is read whole and filtered: hundreds of lookups cost seconds more
_ID_CHUNK, _WHOLE = 5_000, 50_000


def copy_out(conn: Connection, query: sa.Select, names: Sequence[str]) -> Any:
    """PostgreSQL: ``query``'s rows as a frame of text (NaN for NULL), sent by COPY and parsed by pandas' CSV
    reader: for a million rows several times faster than the driver's typed rows (a datetime object per
    value). COPY takes no parameters: the driver renders them (in C)."""
    import pandas as pd

    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()
    statement = cursor.mogrify(compiled.string, compiled.params).decode()
    buf = io.BytesIO()  # bytes as the server sends them: the parser reads them without encoding text again
    cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, NULL '\\N')", buf)
    buf.seek(0)
    return pd.read_csv(buf, header=None, names=list(names), dtype=str, keep_default_na=False, na_values=["\\N"],
                       quoting=csv.QUOTE_MINIMAL)


def rows_for_ids(conn: Connection, query: sa.Select, column: sa.ColumnElement, ids: Sequence[str] | None,
                 names: Sequence[str], text: bool = False) -> Any:
    """``query``'s rows whose ``column`` is one of ``ids`` (None: all), as a frame of columns ``names``: in one
    lookup (PostgreSQL) or lookups of a few thousand ids (SQLite), or, for many ids, read whole and filtered
    here. ``text``: on PostgreSQL a whole read comes as text (``copy_out``; the caller converts what it needs),
    not as the driver's types."""
    import pandas as pd

    whole = ids is None or len(ids) > _WHOLE
    if whole and text and conn.dialect.name == "postgresql":
        out = copy_out(conn, query, names)
        out = out.astype(object).where(out.notna(), None)
        return out if ids is None else out[out[column.name].isin(set(ids))].reset_index(drop=True)
    if whole:
        rows = conn.execute(query).all()
    elif conn.dialect.name == "postgresql":
        # one array parameter (``= ANY``), the same index scan: an IN list is expanded into a bind parameter
        # per id, which costs the client more than the server's lookup (45,754 ids: 2.27 s in lookups of
        # 5,000, 0.79 s as one array)
        rows = conn.execute(query.where(column == sa.any_(sa.bindparam(None, list(ids))))).all()
    else:
        rows = [r for start in range(0, len(ids), _ID_CHUNK)
                for r in conn.execute(query.where(column.in_(ids[start : start + _ID_CHUNK])))]  # fmt: skip
    # plain tuples: pandas probes a SQLAlchemy Row's attributes one at a time
    out = pd.DataFrame([tuple(r) for r in rows], columns=list(names)).astype(object)
    if whole and ids is not None:
        out = out[out[column.name].isin(set(ids))].reset_index(drop=True)
    return out


def insert_frame(conn: Connection, table: sa.Table, frame: Any, json_columns: Sequence[str] = ()) -> None:
    """Append a frame's rows (columns named as the table's; None/NA for NULL): PostgreSQL's COPY, which
    takes a million rows in seconds where INSERTs take minutes; an executemany on SQLite (in-process).
    ``json_columns`` hold JSON text (canonical) on the way in."""
    import pandas as pd

    if not len(frame):
        return
    if conn.dialect.name == "postgresql":
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        for start in range(0, len(frame), 200_000):
            buf = io.StringIO()
            frame.iloc[start : start + 200_000].to_csv(buf, index=False, header=False, na_rep="\\N")
            buf.seek(0)
            conn.connection.driver_connection.cursor().copy_expert(
                f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf
            )
        return
    plain = frame.astype(object).where(pd.notna(frame), None)
    for name in json_columns:  # the column type serializes: hand it the document
        plain[name] = [None if v is None else orjson.loads(v) for v in plain[name].tolist()]
    records = plain.to_dict("records")
    for start in range(0, len(records), PG_PAGE):
        conn.execute(table.insert(), records[start : start + PG_PAGE])


_COPY_SLICE = 50_000  # rows per COPY: its text a few tens of MB
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
# CSV whose delimiter, quote and null marker are control characters no value holds: nothing to quote or escape
_SEPARATOR = "\x1f"
_CSV = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e', NULL E'\\x1d')"
_CONTROL = re.compile("[\x00-\x1f]")


def copy_text(conn: Connection, table: sa.Table, frame: Any, json_columns: Sequence[str] = (),
              copies: CopyBehind | None = None) -> None:
    """``insert_frame`` for frames of text and integers without NULLs (``json_columns``: compact JSON documents
    as text, as encoders write them: control characters escaped, no line breaks), by COPY on PostgreSQL. A
    slice of rows at a time (the text of a first plan's rows at once would take several times their size);
    ``copies``: COPY each slice on that worker while the next is made (``copy_behind.py``).

    A slice goes as CSV whose delimiter, quote and null marker are control characters (``_CSV``): no value
    holds one (a JSON document escapes them), so the values go as they are, with nothing to quote or escape
    (``to_csv`` quotes every value and doubles every quote of a JSON document; COPY's text format needs every
    backslash doubled, and JSON has many: the client spent three times as long per row, measured on a million
    plan rows; the server takes them in no faster either way). A slice whose text values do hold a control
    character goes in the text format, escaped."""
    if not len(frame) or conn.dialect.name != "postgresql":
        insert_frame(conn, table, frame, json_columns)
        return
    quoted = ", ".join(f'"{c}"' for c in frame.columns)
    text_columns = [c for c in frame.columns if c not in json_columns and not is_integer_dtype(frame[c])]
    for start in range(0, len(frame), _COPY_SLICE):
        part = frame.iloc[start : start + _COPY_SLICE]
        columns = {name: part[name].astype(str).tolist() for name in frame.columns}
        if any(_CONTROL.search("".join(columns[c])) for c in text_columns):
            statement, lines = f'COPY "{table.name}" ({quoted}) FROM STDIN', _escaped_lines(part)
        else:
            statement = f'COPY "{table.name}" ({quoted}) FROM STDIN {_CSV}'
            lines = "\n".join(map(_SEPARATOR.join, zip(*columns.values(), strict=True))) + "\n"
        del columns
        if copies is None:
            copy_now(conn, statement, lines)
        else:
            copies.submit(statement, lines)


def _escaped_lines(part: Any) -> str:
    """Rows in COPY's text format: a column escaped as one string (``str.replace`` at C speed; NUL, which
    PostgreSQL's text cannot hold, parts the values)."""
    columns = []
    for name in part.columns:
        text = "\x00".join(part[name].astype(str).tolist())
        for raw, escaped in _COPY_ESCAPES:
            text = text.replace(raw, escaped)
        columns.append(text.split("\x00"))
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"

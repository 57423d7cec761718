"""The linked and created records' mapped values as the plans read them: a ``unified`` field table
(``fields_<crm>_<object>``: one JSON document of HubSpot-named values per record) spread into one column per
property. A full plan reads each table whole, once, for both the merges of linked records and the values its
creates carry (``cache``).

On PostgreSQL the server spreads the documents (``values -> 'property'``, one column each, as JSON text) and
each column is decoded by one ``orjson`` call over the whole column: 40% less time at a million people than a
document per record decoded and spread here, with the same Python values (strings, numbers, booleans as the
document holds them). Which properties: those of a few documents (every document one ``unified`` run writes has
the same, ``unified.field_rows``); any other a record has arrives in a remainder document and is spread here."""

from __future__ import annotations

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state import unified
from crm_pipelines.state.sql import copy_out

_CHUNK = 20_000  # ids per query
_SAMPLE = 100  # documents whose properties become the server's columns
_REST = "\x00rest"  # the remainder document's column (no property is named so)


def read_fields(engine: Engine, crm: str, obj: str, ids: list[str] | None) -> pd.DataFrame:
    """``id`` (text) + one column per HubSpot property of these records of ``crm``'s ``obj`` (None: all)."""
    name = f"fields_{crm}_{obj.lower()}"
    chunks = [None] if ids is None else [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
    if not chunks:
        return pd.DataFrame({"id": pd.Series(dtype=object)})
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return _spread_on_server(conn, name, chunks)
    id_column = unified.column(name, "id")
    parts = [unified.read(engine, name, None if chunk is None else id_column.in_(chunk)) for chunk in chunks]
    stored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"id": [], "values": []})
    docs = [v or {} for v in stored["values"].tolist()]
    names = dict.fromkeys(k for d in docs for k in d)  # column by column: a frame of dicts costs 10x more
    return pd.DataFrame({"id": stored["id"].astype(str).to_numpy(),
                         **{k: pd.Series([d.get(k) for d in docs], dtype=object) for k in names if k != "id"}})


def _spread_on_server(conn: Connection, name: str, chunks: list[list[str] | None]) -> pd.DataFrame:
    id_column = unified.column(name, "id")
    values = sa.type_coerce(unified.column(name, "values"), JSONB)
    # a document that is not an object (JSON null) holds no property, as when spread here
    is_object = sa.func.jsonb_typeof(values) == "object"
    sample = sa.select(values).where(is_object).limit(_SAMPLE).subquery()
    keys = conn.execute(sa.select(sa.func.jsonb_object_keys(sample.c[0])).distinct()).scalars().all()
    # in the order of a document's keys (PostgreSQL's: shorter first), as the documents spread here come
    keys = sorted((k for k in keys if k != "id"), key=lambda k: (len(k.encode()), k.encode()))
    rest = sa.case((is_object, values.op("-", return_type=JSONB)(sa.literal([*keys, "id"], ARRAY(sa.Text)))))
    query = sa.select(id_column, *[values[k] for k in keys], rest)
    names = ["id", *keys, _REST]
    parts = [copy_out(conn, query if chunk is None else query.where(id_column.in_(chunk)), names) for chunk in chunks]
    raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    out = {"id": raw["id"].astype(str).to_numpy(dtype=object)}
    for key in keys:
        column = _decoded(raw[key])
        if column is not None:
            out[key] = column
    extra = raw[_REST].notna().to_numpy() & (raw[_REST] != "{}").to_numpy()
    if extra.any():  # properties the sampled documents lack (a mapping added since): spread here
        docs = [orjson.loads(d) if e else {} for d, e in zip(raw[_REST].tolist(), extra, strict=True)]
        for key in dict.fromkeys(k for d in docs for k in d if k != "id"):
            out[key] = pd.Series([d.get(key) for d in docs], dtype=object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(raw)))


def _decoded(cells: pd.Series) -> pd.Series | None:
    """A column of JSON texts (NaN where the document lacks the property) as Python values, in one parse; None
    when no document has the property (it gets no column, as when spread here)."""
    present = cells.notna()
    if not present.any():
        return None
    text = "[" + ",".join(cells.where(present, "null").tolist()) + "]"
    return pd.Series(orjson.loads(text), dtype=object)


def whole_fields(engine: Engine, crm: str, obj: str, cache: dict | None) -> pd.DataFrame:
    """``read_fields`` of every record, read once per ``cache`` (one plan)."""
    if cache is None:
        return read_fields(engine, crm, obj, None)
    if (crm, obj) not in cache:
        cache[(crm, obj)] = read_fields(engine, crm, obj, None)
    return cache[(crm, obj)]

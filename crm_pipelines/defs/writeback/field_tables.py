"""The linked and created records' mapped values as the plans read them: a ``unified`` field table
(``fields_<crm>_<object>``: one JSON document of HubSpot-named values per record) spread into one column per
property. A full plan reads each table whole, once, for both the merges of linked records and the values its
creates carry (``cache``)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines.state import unified

_CHUNK = 20_000  # ids per query


def read_fields(engine: Engine, crm: str, obj: str, ids: list[str] | None) -> pd.DataFrame:
    """``id`` (text) + one column per HubSpot property of these records of ``crm``'s ``obj`` (None: all)."""
    name = f"fields_{crm}_{obj.lower()}"
    if ids is None:
        parts = [unified.read(engine, name)]
    else:
        parts = [unified.read(engine, name, unified.column(name, "id").in_(ids[i : i + _CHUNK]))
                 for i in range(0, len(ids), _CHUNK)]  # fmt: skip
    stored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"id": [], "values": []})
    docs = [v or {} for v in stored["values"].tolist()]
    names = dict.fromkeys(k for d in docs for k in d)  # column by column: a frame of dicts costs 10x more
    return pd.DataFrame({"id": stored["id"].astype(str).to_numpy(),
                         **{k: pd.Series([d.get(k) for d in docs], dtype=object) for k in names if k != "id"}})


def whole_fields(engine: Engine, crm: str, obj: str, cache: dict | None) -> pd.DataFrame:
    """``read_fields`` of every record, read once per ``cache`` (one plan)."""
    if cache is None:
        return read_fields(engine, crm, obj, None)
    if (crm, obj) not in cache:
        cache[(crm, obj)] = read_fields(engine, crm, obj, None)
    return cache[(crm, obj)]

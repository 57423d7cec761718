"""Mirror tables: bulk upserts of extracted records, deletion flags, and frames for the transform layer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from crm_pipelines.state.schema import MIRROR_TABLES
from crm_pipelines.state.sql import ids_in_ranges, upsert

UPSERT_CHUNK = 5_000
READ_CHUNK = 50_000
_BASE = ("id", "modified_at", "deleted")  # columns of the table itself, always read
_CONTENT = ("deleted", "deleted_at", "record")  # what a re-read must change for its row to be rewritten


@dataclass(frozen=True)
class MirrorRow:
    id: str
    modified_at: datetime | None
    record: dict[str, Any]
    deleted: bool = False
    deleted_at: datetime | None = None


def stamp() -> datetime:
    """``extracted_at`` for a write, taken once the write's transaction has begun (on SQLite: holding the
    write lock). One writer at a time per table (each connection's runs share one pool), so a write still
    in flight when ``unified`` took its watermark (the latest stamp committed) stamps later than it."""
    return datetime.now(UTC)


def table_for(crm: str, obj: str) -> sa.Table:
    try:
        return MIRROR_TABLES[(crm, obj)]
    except KeyError:
        raise KeyError(f"no mirror table for {crm}.{obj}") from None


def upsert_rows(engine: Engine, crm: str, obj: str, rows: Iterable[MirrorRow]) -> int:
    """Insert or replace rows by id, in multi-row statements; returns how many were written.

    A live record written here clears an earlier deletion flag: the CRM says it exists (restored). A record
    read again unchanged (same modification time, fields and flag: an incremental extract's safety lag
    re-reads the last minutes every run) keeps its row and its ``extracted_at``, so ``unified``, which
    reads what was extracted since its watermark, does not take it for a change.
    """
    table = table_for(crm, obj)
    written = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        now = stamp()
        for row in rows:
            batch.append(
                {
                    "id": row.id,
                    "modified_at": row.modified_at,
                    "deleted": row.deleted,
                    "deleted_at": row.deleted_at,
                    "record": row.record,
                    "extracted_at": now,
                }
            )
            if len(batch) >= UPSERT_CHUNK:
                upsert(conn, table, batch, key=["id"], newer="modified_at", same_unless=_CONTENT)
                written += len(batch)
                batch = []
        upsert(conn, table, batch, key=["id"], newer="modified_at", same_unless=_CONTENT)
        written += len(batch)
    return written


def replace_groups(engine: Engine, crm: str, obj: str, prefixes: Sequence[str], rows: Sequence[MirrorRow]) -> int:
    """Make ``rows`` the whole live content of the id groups named by ``prefixes`` (ids starting with one).

    For link-like objects (HubSpot associations keyed ``from_type:from_id:to_type:…``): re-reading a record's
    links must also retire the links that disappeared, so they are flagged deleted rather than left live.
    """
    table = table_for(crm, obj)
    keep = {r.id for r in rows}
    with engine.begin() as conn:
        now = stamp()
        for chunk in _chunks(list(prefixes), 200):  # SQLite allows 500 selects in one compound statement
            stale = [i for i in ids_in_ranges(conn, table, chunk, table.c.deleted.is_(False)) if i not in keep]
            for ids in _chunks(stale, 1000):
                conn.execute(
                    table.update().where(table.c.id.in_(ids)).values(deleted=True, deleted_at=now, extracted_at=now)
                )
    return upsert_rows(engine, crm, obj, rows)


def mark_deleted(engine: Engine, crm: str, obj: str, deletions: Sequence[tuple[str, datetime | None]]) -> int:
    """Flag records deleted in the CRM; never drops them. Unknown ids get a tombstone row."""
    if not deletions:
        return 0
    table = table_for(crm, obj)
    with engine.begin() as conn:
        now = stamp()
        known = {
            r[0]
            for chunk in _chunks([d[0] for d in deletions], 1000)
            for r in conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk)))
        }
        flagged = [{"b_id": i, "b_at": when or now} for i, when in deletions if i in known]
        if flagged:
            # one executemany: batched round trips on PostgreSQL (see db.py), in-process on SQLite
            conn.execute(
                table.update()
                .where(table.c.id == sa.bindparam("b_id"))
                .values(deleted=True, deleted_at=sa.bindparam("b_at"), extracted_at=now),
                flagged,
            )
        tombstones = [
            {
                "id": i,
                "modified_at": when,
                "deleted": True,
                "deleted_at": when or now,
                "record": {},
                "extracted_at": now,
            }
            for i, when in deletions
            if i not in known
        ]
        upsert(conn, table, tombstones, key=["id"])
    return len(deletions)


def counts(engine: Engine, crm: str, obj: str) -> dict[str, int]:
    table = table_for(crm, obj)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.deleted, sa.func.count()).group_by(table.c.deleted)).all()
    by = {bool(d): int(n) for d, n in rows}
    return {"live": by.get(False, 0), "deleted": by.get(True, 0)}


def last_extracted(engine: Engine, crm: str, obj: str) -> datetime | None:
    """When the mirror last took a row (an index lookup): ``unified``'s watermark per table."""
    table = table_for(crm, obj)
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(table.c.extracted_at))).scalar_one()
    if isinstance(latest, str):  # SQLite hands back the text it stored
        latest = datetime.fromisoformat(latest)
    return latest.replace(tzinfo=UTC) if latest is not None and latest.tzinfo is None else latest


def count_live_in_window(engine: Engine, crm: str, obj: str, start: datetime, end: datetime) -> int:
    table = table_for(crm, obj)
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    table.c.deleted.is_(False), table.c.modified_at >= start, table.c.modified_at < end
                )
            ).scalar_one()
        )


def read_records(
    engine: Engine, crm: str, obj: str, *, after: datetime | None = None, ids: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The mirror as a frame: ``id``, ``modified_at`` (UTC), ``deleted`` and the record's own fields,
    named as the API names them (HubSpot's ``properties`` are lifted to columns). ``after``: only rows
    stamped later (``extracted_at``); ``ids``: only these records; ``columns``: only these fields (each as
    it would be without the others: absent when no record has it), the rest of each record never becomes
    a column (a full run's memory, issue 11)."""
    table = table_for(crm, obj)
    wanted = None if columns is None else tuple(dict.fromkeys(c for c in columns if c not in _BASE))
    record = [_record(table, crm, wanted, engine.dialect.name)] if wanted != () else [sa.null()]
    query = sa.select(table.c.id, table.c.modified_at, table.c.deleted, *record)
    if after is not None:
        query = query.where(table.c.extracted_at > after)
    with engine.connect() as conn:
        if ids is None:
            # streamed a chunk at a time: the parsed JSON of one chunk is alive at once, not the whole table's
            result = conn.execution_options(stream_results=True, yield_per=READ_CHUNK).execute(query)
            parts = [_frame(crm, rows, wanted) for rows in result.partitions()]
        else:
            parts = [_frame(crm, rows, wanted) for chunk in _chunks(list(ids), 1000)
                     if (rows := conn.execute(query.where(table.c.id.in_(chunk))).all())]  # fmt: skip
    if not parts:
        return pd.DataFrame(
            {
                "id": pd.Series(dtype="string"),
                "modified_at": pd.Series(dtype="datetime64[ns, UTC]"),
                "deleted": pd.Series(dtype=bool),
            }
        )
    if len(parts) == 1:
        return parts[0]
    # the dtypes one frame of every row would have had (a column all missing in one chunk is ``object`` there)
    return pd.concat(parts, ignore_index=True).infer_objects()


def _record(table: sa.Table, crm: str, wanted: tuple[str, ...] | None, dialect: str) -> sa.ColumnElement:
    """The record column, or on PostgreSQL only its ``wanted`` fields (where ``_own`` finds them): the server
    drops the rest, so the client neither receives nor parses them (a full run reads a few of dozens of
    fields; issue 11: the parsed records of a chunk were 300 MB of the read's peak)."""
    if wanted is None or dialect != "postgresql":
        return table.c.record
    record = sa.type_coerce(table.c.record, JSONB)
    fields = record
    if crm == "hubspot":
        properties = record.op("->")("properties")
        fields = sa.case((sa.func.jsonb_typeof(properties) == "object", properties), else_=record)
    each = sa.func.jsonb_each(fields).table_valued("key", "value").alias("field")
    picked = sa.select(sa.func.jsonb_object_agg(each.c.key, each.c.value)).where(each.c.key.in_(list(wanted)))
    return sa.type_coerce(picked.scalar_subquery(), JSONB).label("record")


def _frame(crm: str, rows: Sequence[Any], wanted: tuple[str, ...] | None = None) -> pd.DataFrame:
    if wanted is None:
        records = [_fields(crm, r[3]) for r in rows]
    else:
        records = [{k: f[k] for k in wanted if k in f} for f in (_own(crm, r[3] or {}) for r in rows)]
    fields = pd.DataFrame.from_records(records)
    base = pd.DataFrame(
        {
            "id": pd.array([r[0] for r in rows], dtype="string"),
            "modified_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "deleted": [bool(r[2]) for r in rows],
        }
    )
    fields = fields.drop(columns=[c for c in ("id", "modified_at", "deleted") if c in fields.columns])
    return pd.concat([base, _shared_strings(fields)], axis=1)


def _shared_strings(fields: pd.DataFrame) -> pd.DataFrame:
    """Each text column with equal values held as one object. The JSON parse makes a new string per value,
    and most fields repeat a few values (countries, stages, owners, association types): at 200,000 people
    that was half the mirrors' memory (issue 11). Only columns of strings, where equal means the same value
    (an object column may hold ``1`` and ``True``, which hash as one)."""
    out = {}
    for name in fields.columns:
        col = fields[name]
        if isinstance(col.dtype, pd.StringDtype) and _repeats(col):
            codes, uniques = col.array.factorize()
            col = pd.Series(uniques.take(codes, allow_fill=True), index=col.index, name=name)
        out[name] = col
    return pd.DataFrame(out, index=fields.index) if out else fields


def _repeats(col: pd.Series, sample: int = 1_000) -> bool:
    """Whether sharing is worth a hash of every value: a column of unique values (ids, emails) is not."""
    head = col.iloc[:sample].dropna()
    return len(head) > 0 and head.nunique() < 0.9 * len(head)


def _own(crm: str, record: dict[str, Any]) -> dict[str, Any]:
    """Where a record's fields are (``_fields`` without its copy: the fields picked from it are named)."""
    if crm == "hubspot" and isinstance(record.get("properties"), dict):
        return record["properties"]
    return record


def _fields(crm: str, record: dict[str, Any]) -> dict[str, Any]:
    if crm == "hubspot" and isinstance(record.get("properties"), dict):
        return record["properties"]
    return {k: v for k, v in record.items() if k != "attributes" and not k.startswith("@odata")}


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]

"""Running compiled SOQL: totals, batches of up to 2,000 and query locators (FACTS §5).

A locator remembers the compiled query and, per batch it has handed out, where the next one starts. Batches
are keyset-paged (every batch costs the same at row 900,000 as at row 0): along the rowid without ORDER BY,
along (order columns, rowid) when ORDER BY names non-null columns in one direction (``ORDER BY
SystemModstamp``, the incremental sync's query); any other ORDER BY falls back to LIMIT/OFFSET.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import make_id
from crm_pipelines.sandbox.salesforce.soql import parse
from crm_pipelines.sandbox.salesforce.soql_sql import Column, Compiled, compile_query
from crm_pipelines.sandbox.salesforce.store import SalesforceStore

MAX_OPEN_LOCATORS = 2_000  # oldest locators are forgotten beyond this, as idle cursors expire in a real org


@dataclass
class Cursor:
    compiled: Compiled
    total: int  # rows the whole query returns (after LIMIT/OFFSET)
    # served offset -> the last row's keyset (its order values, then its rowid)
    after: dict[int, tuple] = field(default_factory=dict)


def _value(f_type: str, raw: Any) -> Any:
    if raw is None:
        return None
    if f_type == "boolean":
        return bool(raw)
    return raw


def render(compiled: Compiled, rows: list[tuple], version: str) -> list[dict[str, Any]]:
    """Query records: ``attributes`` then the selected fields; parents nested under their relationship."""
    base = f"/services/data/v{version}/sobjects/"
    root_type = compiled.sobject.name
    root_id = compiled.id_columns[()]
    out = []
    for row in rows:
        record: dict[str, Any] = {"attributes": {"type": root_type, "url": base + root_type + "/" + row[root_id]}}
        for col in compiled.columns:
            target = record
            for depth, rel in enumerate(col.relationships):
                path = col.relationships[: depth + 1]
                if rel not in target:
                    rid = row[compiled.id_columns[path]]
                    target[rel] = None if rid is None else {
                        "attributes": {"type": col.objects[depth], "url": base + col.objects[depth] + "/" + rid}
                    }
                target = target[rel]
                if target is None:
                    break
            else:
                if col.parts:
                    value = {k: row[i] for k, i in col.parts}
                    target[col.field.name] = value if any(v is not None for v in value.values()) else None
                else:
                    target[col.field.name] = _value(col.field.type, row[col.index])
        out.append(record)
    return out


def csv_value(col: Column, raw: Any) -> str:
    if raw is None:
        return ""
    if col.field.type == "boolean":
        return "true" if raw else "false"
    return str(raw)


class QueryEngine:
    def __init__(self, store: SalesforceStore, picklists: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.picklists = picklists  # the org's state/country picklist setting, read per query
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._ids = itertools.count(1)

    def prepare(self, soql: str, *, include_deleted: bool) -> Cursor:
        compiled = compile_query(parse(soql), include_deleted=include_deleted, picklists=self.picklists())
        matching = self.store.db.execute("SELECT COUNT(*) " + compiled.source, compiled.params).fetchone()[0]
        total = max(0, matching - compiled.offset)
        if compiled.limit is not None:
            total = min(total, compiled.limit)
        return Cursor(compiled, total)

    def fetch(self, cursor: Cursor, served: int, size: int) -> list[tuple]:
        """Rows ``served .. served + size`` of the query's result."""
        c = cursor.compiled
        size = min(size, cursor.total - served)
        if size <= 0:
            return []
        keyed = c.offset == 0 and (c.order is None or bool(c.keyset))
        if keyed:
            # Keyset paging: continue after the last row served, along an index, whatever the depth.
            exprs = [*c.keyset_exprs, "t.rowid"]
            direction = "DESC" if c.keyset_desc else "ASC"
            sql = c.select + c.source
            params = list(c.params)
            if served:
                last = cursor.after.get(served)
                if last is None:
                    raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
                op = "<" if c.keyset_desc else ">"
                marks = ", ".join("?" * len(exprs))
                sql += (" AND " if " WHERE " in c.source else " WHERE ") + f"({', '.join(exprs)}) {op} ({marks})"
                params += list(last)
            sql += " ORDER BY " + ", ".join(f"{e} {direction}" for e in exprs) + " LIMIT ?"
            rows = self.store.db.execute(sql, [*params, size]).fetchall()
        else:
            order = f"{c.order}, t.rowid" if c.order else "t.rowid"
            sql = c.select + c.source + f" ORDER BY {order} LIMIT ? OFFSET ?"
            rows = self.store.db.execute(sql, [*c.params, size, c.offset + served]).fetchall()
        if rows:
            cursor.after[served + len(rows)] = (*(rows[-1][i] for i in c.keyset), rows[-1][0])
        return rows

    def first_page(self, soql: str, *, include_deleted: bool, batch: int, version: str) -> dict[str, Any]:
        cursor = self.prepare(soql, include_deleted=include_deleted)
        if cursor.compiled.count:
            return {"totalSize": cursor.total, "done": True, "records": []}
        return self._page(cursor, None, 0, batch, version, "queryAll" if include_deleted else "query")

    def next_page(self, locator: str, batch: int, version: str, resource: str) -> dict[str, Any]:
        query_id, _, offset = locator.rpartition("-")
        cursor = self.cursors.get(query_id)
        if cursor is None or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.cursors.move_to_end(query_id)
        return self._page(cursor, query_id, int(offset), batch, version, resource)

    def _page(self, cursor: Cursor, query_id: str | None, served: int, batch: int, version: str,
              resource: str) -> dict[str, Any]:
        rows = self.fetch(cursor, served, batch)
        end = served + len(rows)
        body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= cursor.total}
        if not body["done"]:
            if query_id is None:
                query_id = make_id("01g", next(self._ids))
                self.cursors[query_id] = cursor
                while len(self.cursors) > MAX_OPEN_LOCATORS:
                    self.cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/{resource}/{query_id}-{end}"
        body["records"] = render(cursor.compiled, rows, version)
        return body

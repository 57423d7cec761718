"""A stored row as the Web API writes it: ``@odata.etag``, typed values, annotations when asked (FACTS §C).

Formatted values (``<col>@OData.Community.Display.V1.FormattedValue``) are added only when the request's
``Prefer: odata.include-annotations`` names them, as are the lookup annotations
(``@Microsoft.Dynamics.CRM.lookuplogicalname``, ``…associatednavigationproperty``). Pages without them - what a
sync reads - are written as JSON by SQLite itself, byte for byte what rendering the rows here would give.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, CURRENCIES, Attribute, Table
from crm_pipelines.sandbox.dynamics.odata import Prefer
from crm_pipelines.sandbox.dynamics.store import DynamicsStore, sql_type, target_column

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_TABLE = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAV_PROPERTY = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_CURRENCY_BY_ID = {cid: (name, symbol) for cid, name, symbol in CURRENCIES.values()}
# etag() in SQL, for rows SQLite renders itself (versionnumber is INTEGER, so the text is the same).
ETAG_SQL = """'W/"' || versionnumber || '"'"""


def etag(version: int) -> str:
    return f'W/"{version}"'


def value_of(attr: Attribute, raw: Any) -> Any:
    if raw is None:
        return None
    if attr.type == "Boolean":
        return bool(raw)
    if attr.type == "Money":
        return float(raw)
    return raw


def _formatted(attr: Attribute, raw: Any, row: dict[str, Any]) -> str | None:
    """The user-facing text Dataverse formats for an English (1033) user."""
    if raw is None:
        return None
    t = attr.type
    if t in ("Picklist", "State", "Status"):
        return attr.label(raw)
    if t == "Boolean":
        return "Yes" if raw else "No"
    if t in ("Integer", "BigInt"):
        return f"{raw:,}"
    if t == "Money":
        symbol = _CURRENCY_BY_ID.get(row.get("_transactioncurrencyid_value") or "", ("", "$"))[1]
        return f"{symbol}{raw:,.2f}"
    if t == "DateTime":
        if attr.date_only:
            d = dt.date.fromisoformat(raw)
            return f"{d.month}/{d.day}/{d.year}"
        v = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        hour = v.hour % 12 or 12
        return f"{v.month}/{v.day}/{v.year} {hour}:{v.minute:02d} {'AM' if v.hour < 12 else 'PM'}"
    return None


def target_of(attr: Attribute, row: dict[str, Any]) -> str | None:
    """The table a lookup value points to (polymorphic lookups keep it in a hidden column)."""
    if row.get(attr.column) is None:
        return None
    col = target_column(attr)
    return row.get(col) if col else attr.targets[0]


def _json_value_sql(attr: Attribute) -> str:
    """SQL for one column's JSON value inside ``json_object``, written as orjson writes the Python value.

    Text and integers SQLite writes identically. Booleans are stored 0/1 and must read true/false. A REAL is
    written by SQLite with 15 significant digits, which is exact (and the same text as orjson's, "12.0") only
    for whole numbers below 10^15 - what every seeded amount is; any other value goes through ``json_number``
    (orjson, registered by the store) so no amount is ever rounded. ``json(...)`` marks the text as JSON.
    """
    col = attr.column
    if attr.type == "Boolean":
        return f"json(CASE WHEN {col} IS NULL THEN 'null' WHEN {col} THEN 'true' ELSE 'false' END)"
    if sql_type(attr) == "REAL":
        return (f"json(CASE WHEN {col} IS NULL THEN 'null' WHEN {col} != 0 AND {col} = CAST({col} AS INTEGER) "
                f"AND abs({col}) < 1e15 THEN CAST({col} AS TEXT) ELSE json_number({col}) END)")
    return col


class JsonRows:
    """Rows rendered as JSON by SQLite (``Renderer.json_sql``); orjson writes them into a body unchanged."""

    def __init__(self, rows: list[bytes]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def fragment(self, more: Sequence[dict[str, Any]] = ()) -> orjson.Fragment:
        """The JSON array of these rows, then ``more`` (rendered by orjson), for a body's ``value``."""
        return orjson.Fragment(b"[" + b",".join([*self.rows, *(orjson.dumps(m) for m in more)]) + b"]")


class Renderer:
    """Renders the rows of one response; looks up lookup names once per page, not once per row.

    Everything that depends only on the request (columns, annotations wanted, navigation names) is worked
    out here once, so rendering a 5,000-row page does no per-row catalog lookups.
    """

    def __init__(self, store: DynamicsStore, table: Table, select: list[str] | None, prefer: Prefer) -> None:
        self.store, self.table, self.prefer = store, table, prefer
        cols = select or [a.column for a in table.attributes]
        if table.primary_id not in cols:  # the primary key is always returned (FACTS §C)
            cols = [*cols, table.primary_id]
        # A name repeated in $select is one property, at its first place (as a dict assignment would have it).
        self.columns = list(dict.fromkeys(cols))
        self.attrs = [table.by_column[c] for c in self.columns]
        self.formatted = prefer.wants(FORMATTED)
        self.lookup_annotations = prefer.wants(LOOKUP_TABLE)
        self.nav_annotations = prefer.wants(NAV_PROPERTY)
        # Without annotations a row is its ETag and its stored values: SQLite can write it (``json_sql``).
        self.plain = not (self.formatted or self.lookup_annotations or self.nav_annotations)
        # Booleans are INTEGER 0/1 in SQLite. Money/Decimal/Double columns have REAL affinity, so SQLite already
        # returns them as floats (value_of's float() is a no-op there) and they need no per-row conversion.
        self._booleans = [a.column for a in self.attrs if a.type == "Boolean"]
        self._plan = [(a, a.column, a.is_lookup, target_column(a)) for a in self.attrs]
        # reversed: the first navigation property declared for a lookup and target wins, as before
        self._nav_names = {(n.attribute, n.target): n.name for n in reversed(table.navigation)}

    # -- plain rows, written by SQLite ----------------------------------------------------------------------
    def json_sql(self) -> str:
        """One SQL expression giving a plain row as UTF-8 JSON bytes, the very text ``orjson.dumps`` writes for
        the dict ``rows`` renders (same keys in the same order, same values), so a page of them needs no
        Python object per value: reading 20 columns of 5,000 rows into Python costs more than the rest of
        the request together."""
        parts = ["'@odata.etag'", ETAG_SQL]
        for attr in self.attrs:
            parts += [f"'{attr.column}'", _json_value_sql(attr)]
        return f"CAST(json_object({', '.join(parts)}) AS BLOB)"

    # -- rows as stored dicts ----------------------------------------------------------------------------
    def target_of(self, attr: Attribute, row: dict[str, Any]) -> str | None:
        return target_of(attr, row)

    def _lookup_names(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], str | None]:
        wanted: dict[str, set[str]] = defaultdict(set)
        for attr in self.attrs:
            if not attr.is_lookup:
                continue
            for row in rows:
                target = self.target_of(attr, row)
                if target:
                    wanted[target].add(row[attr.column])
        names: dict[tuple[str, str], str | None] = {}
        for target, ids in wanted.items():
            if target == "transactioncurrency":
                names.update({("transactioncurrency", i): _CURRENCY_BY_ID.get(i, ("", ""))[0] for i in ids})
            elif target in BY_LOGICAL:
                found = self.store.names(BY_LOGICAL[target], sorted(ids))
                names.update({(target, i): n for i, n in found.items()})
        return names

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.plain:
            cols, booleans = self.columns, self._booleans
            out = [{"@odata.etag": etag(r["versionnumber"]), **{c: r.get(c) for c in cols}} for r in rows]
            for d in out if booleans else ():
                for col in booleans:
                    if d[col] is not None:
                        d[col] = bool(d[col])
            return out
        names = self._lookup_names(rows) if self.formatted and any(a.is_lookup for a in self.attrs) else {}
        return [self.row(r, names) for r in rows]

    def row(self, row: dict[str, Any], names: dict[tuple[str, str], str | None] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(row["versionnumber"])}
        for attr, col, is_lookup, hidden in self._plan:
            raw = row.get(col)
            if is_lookup and raw is not None:
                target = row.get(hidden) if hidden else attr.targets[0]
                if self.formatted and names is not None:
                    out[f"{col}@{FORMATTED}"] = names.get((target or "", raw))
                if self.nav_annotations:
                    out[f"{col}@{NAV_PROPERTY}"] = self._nav_names.get((attr.name, target), attr.name)
                if self.lookup_annotations:
                    out[f"{col}@{LOOKUP_TABLE}"] = target
            elif self.formatted and raw is not None:
                text = _formatted(attr, raw, row)
                if text is not None:
                    out[f"{col}@{FORMATTED}"] = text
            out[col] = value_of(attr, raw)
        return out

"""A stored row as the Web API writes it: ``@odata.etag``, typed values, annotations when asked (FACTS §C).

Formatted values (``<col>@OData.Community.Display.V1.FormattedValue``) are added only when the request's
``Prefer: odata.include-annotations`` names them, as are the lookup annotations
(``@Microsoft.Dynamics.CRM.lookuplogicalname``, ``…associatednavigationproperty``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, CURRENCIES, Attribute, Table
from crm_pipelines.sandbox.dynamics.odata import Prefer
from crm_pipelines.sandbox.dynamics.store import DynamicsStore, target_column

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_TABLE = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAV_PROPERTY = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_CURRENCY_BY_ID = {cid: (name, symbol) for cid, name, symbol in CURRENCIES.values()}


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


class Renderer:
    """Renders the rows of one response; looks up lookup names once per page, not once per row."""

    def __init__(self, store: DynamicsStore, table: Table, select: list[str] | None, prefer: Prefer) -> None:
        self.store, self.table, self.prefer = store, table, prefer
        cols = select or [a.column for a in table.attributes]
        if table.primary_id not in cols:  # the primary key is always returned (FACTS §C)
            cols = [*cols, table.primary_id]
        self.attrs = [table.by_column[c] for c in cols]
        self.formatted = prefer.wants(FORMATTED)
        self.lookup_annotations = prefer.wants(LOOKUP_TABLE)
        self.nav_annotations = prefer.wants(NAV_PROPERTY)

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
        names = self._lookup_names(rows) if self.formatted and any(a.is_lookup for a in self.attrs) else {}
        return [self.row(r, names) for r in rows]

    def row(self, row: dict[str, Any], names: dict[tuple[str, str], str | None] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(row["versionnumber"])}
        for attr in self.attrs:
            raw = row.get(attr.column)
            col = attr.column
            if attr.is_lookup and raw is not None:
                target = self.target_of(attr, row)
                if self.formatted and names is not None:
                    out[f"{col}@{FORMATTED}"] = names.get((target or "", raw))
                if self.nav_annotations:
                    nav = next((n.name for n in self.table.navigation
                                if n.attribute == attr.name and n.target == target), attr.name)
                    out[f"{col}@{NAV_PROPERTY}"] = nav
                if self.lookup_annotations:
                    out[f"{col}@{LOOKUP_TABLE}"] = target
            elif self.formatted and raw is not None:
                text = _formatted(attr, raw, row)
                if text is not None:
                    out[f"{col}@{FORMATTED}"] = text
            out[col] = value_of(attr, raw)
        return out

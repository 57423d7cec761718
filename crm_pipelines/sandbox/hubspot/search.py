"""CRM search (FACTS §2) translated to SQL over the record store.

Filters inside a group are ANDed, groups ORed; string values compare case-insensitively except
enumerations; ``IN`` on strings needs lowercase values, as the real index does; dates filter as epoch ms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.catalog import (
    OBJECT_TYPES,
    SEARCH_MAX_FILTERS,
    SEARCH_MAX_FILTERS_PER_GROUP,
    SEARCH_MAX_GROUPS,
    SEARCH_PAGE_MAX,
    SEARCH_QUERY_MAX_CHARS,
    SEARCH_TOTAL_CAP,
    ObjectType,
    PropertyDef,
)
from crm_pipelines.sandbox.hubspot.values import iso_ms, parse_timestamp_ms

OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
_CMP = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
_TOKEN_SPLIT = re.compile(r"[^\w*]+", re.UNICODE)


def token_match(value: str | None, pattern: str | None) -> int:
    """CONTAINS_TOKEN: a whole token of the value, or a ``*`` wildcard over the whole value."""
    if value is None or pattern is None:
        return 0
    value, pattern = value.lower(), pattern.lower()
    if "*" in pattern:
        regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
        return int(bool(re.search(regex, value)) or any(re.search(regex, t) for t in _TOKEN_SPLIT.split(value)))
    return int(pattern == value or pattern in _TOKEN_SPLIT.split(value))


@dataclass
class SearchPlan:
    where: str
    params: list[Any]
    order_by: str
    offset: int
    limit: int
    properties: list[str] | None


def plan_search(o: ObjectType, body: Mapping[str, Any], defs: Mapping[str, PropertyDef]) -> SearchPlan:
    if not isinstance(body, Mapping):
        raise errors.validation("Invalid input JSON on line 1")
    groups = _filter_groups(body)
    if len(groups) > SEARCH_MAX_GROUPS:
        raise errors.validation(f"Too many filter groups ({len(groups)}). The maximum is {SEARCH_MAX_GROUPS}.")
    total_filters = sum(len(g.get("filters") or []) for g in groups)
    if total_filters > SEARCH_MAX_FILTERS:
        raise errors.validation(f"Too many filters ({total_filters}). The maximum is {SEARCH_MAX_FILTERS}.")
    clauses: list[str] = ["o.object_type = ?", "o.archived = 0"]
    params: list[Any] = [o.name]
    ors: list[str] = []
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP and not group.get(_TOP_LEVEL):
            raise errors.validation(
                f"Too many filters in a group ({len(filters)}). The maximum is {SEARCH_MAX_FILTERS_PER_GROUP}."
            )
        ands = []
        for f in filters:
            if not isinstance(f, Mapping):
                raise errors.validation("Invalid input JSON: each filter must be an object")
            sql, p = _filter_sql(o, f, defs)
            ands.append(sql)
            params += p
        if ands:
            ors.append("(" + " AND ".join(ands) + ")")
    if ors:
        clauses.append("(" + " OR ".join(ors) + ")")

    query = body.get("query")
    if query:
        if len(query) > SEARCH_QUERY_MAX_CHARS:
            raise errors.validation(f"query is longer than {SEARCH_QUERY_MAX_CHARS} characters")
        likes = [f"lower(json_extract(o.properties, '$.\"{f}\"')) LIKE ?" for f in o.query_fields]
        clauses.append("(" + " OR ".join(likes) + ")")
        params += [f"%{str(query).lower()}%"] * len(likes)

    limit = _int(body.get("limit", 10), "limit")
    if limit < 0 or limit > SEARCH_PAGE_MAX:
        raise errors.validation(f"limit must be between 0 and {SEARCH_PAGE_MAX}, got {limit}")
    offset = _int(body.get("after") or 0, "after")
    if offset + limit > SEARCH_TOTAL_CAP:
        raise errors.validation(
            f"Paging beyond {SEARCH_TOTAL_CAP} results is not supported: after ({offset}) + limit ({limit}) "
            f"must not exceed {SEARCH_TOTAL_CAP}."
        )
    props = body.get("properties")
    return SearchPlan(
        " AND ".join(clauses),
        params,
        _order_by(o, body.get("sorts") or [], defs),
        offset,
        limit,
        list(props) if props else None,
    )


_TOP_LEVEL = "__top_level__"  # marks the group made of a top-level ``filters`` list


def _filter_groups(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``filterGroups`` plus a top-level ``filters`` list, which HubSpot applies as one more group (FACTS §2).

    Clients written against the API, not the SDK, send ``{"filters": [...]}`` without groups (HubSpot's
    Node SDK issue 491: the API ANDs them and does not hold them to the per-group cap). Ignoring the list
    would silently return every record; a list of anything but filter objects is refused, never skipped.
    """
    groups = body.get("filterGroups") or []
    top = body.get("filters")
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        raise errors.validation("Invalid input JSON: filterGroups must be a list of objects with filters")
    if top is None:
        return groups
    if not isinstance(top, list) or not all(isinstance(f, Mapping) for f in top):
        raise errors.validation("Invalid input JSON: filters must be a list of filter objects")
    return [*groups, {"filters": top, _TOP_LEVEL: True}] if top else groups


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.validation(f"{name} must be an integer, got {value!r}") from None


def _column(o: ObjectType, name: str, defs: Mapping[str, PropertyDef]) -> tuple[str, str]:
    """SQL expression for a property and the kind of comparison it takes."""
    if name == "hs_object_id":
        return "o.id", "number"
    if name in ("createdate", "hs_createdate") and name == o.created_prop:
        return "o.created_ms", "ms"
    if name in ("lastmodifieddate", "hs_lastmodifieddate"):
        return "o.updated_ms", "ms"
    prop = defs.get(name)
    if prop is None:
        raise errors.validation(f"Property {name} does not exist on {o.name}", context={"propertyName": [name]})
    expr = f"json_extract(o.properties, '$.\"{name}\"')"
    if prop.type == "number":
        return f"CAST({expr} AS REAL)", "number"
    if prop.type in ("datetime", "date"):
        return expr, prop.type
    if prop.type == "enumeration" or prop.type == "bool":
        return expr, "exact"
    return f"lower({expr})", "text"


def _value(kind: str, raw: Any) -> Any:
    if raw is None:
        raise errors.validation("A filter value is required for this operator")
    if kind in ("ms", "datetime", "date"):
        ms = parse_timestamp_ms(raw)
        if ms is None:
            raise errors.validation(f"{raw} is not a valid date or timestamp")
        if kind == "ms":
            return ms
        return iso_ms(ms) if kind == "datetime" else iso_ms(ms)[:10]
    if kind == "number":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise errors.validation(f"{raw} is not a valid number") from None
    if kind == "text":
        return str(raw).lower()
    return str(raw)


def _filter_sql(o: ObjectType, f: Mapping[str, Any], defs: Mapping[str, PropertyDef]) -> tuple[str, list[Any]]:
    op = f.get("operator")
    name = f.get("propertyName")
    if op not in OPERATORS or not name:
        raise errors.validation(f"Invalid filter: operator {op!r} on property {name!r}")
    if name.startswith("associations."):
        to = next((t for t in OBJECT_TYPES.values() if name.split(".", 1)[1] in (t.name, t.singular)), None)
        if to is None or op not in ("EQ", "IN"):
            raise errors.validation(f"Unsupported association filter {name} {op}")
        ids = f.get("values") if op == "IN" else [f.get("value")]
        marks = ",".join("?" * len(ids))
        return (
            "EXISTS (SELECT 1 FROM associations a WHERE a.from_type = o.object_type AND a.from_id = o.id "
            f"AND a.to_type = ? AND a.to_id IN ({marks}))",
            [to.name, *(int(i) for i in ids)],
        )
    col, kind = _column(o, name, defs)
    if op == "HAS_PROPERTY":
        return f"{col} IS NOT NULL", []
    if op == "NOT_HAS_PROPERTY":
        return f"{col} IS NULL", []
    if op in _CMP:
        value = _value(kind, f.get("value"))
        if op == "NEQ":
            return f"({col} IS NULL OR {col} != ?)", [value]
        return f"{col} {_CMP[op]} ?", [value]
    if op == "BETWEEN":
        return f"{col} BETWEEN ? AND ?", [_value(kind, f.get("value")), _value(kind, f.get("highValue"))]
    if op in ("IN", "NOT_IN"):
        # The index stores strings lowercased, so IN matches only lowercase values (FACTS §2).
        values = [str(v) if kind == "text" else _value(kind, v) for v in (f.get("values") or [])]
        if not values:
            raise errors.validation(f"{op} needs a non-empty values list")
        marks = ",".join("?" * len(values))
        if op == "IN":
            return f"{col} IN ({marks})", values
        return f"({col} IS NULL OR {col} NOT IN ({marks}))", values
    raw = f"json_extract(o.properties, '$.\"{name}\"')"
    negate = "NOT " if op == "NOT_CONTAINS_TOKEN" else ""
    return f"{negate}hs_token_match({raw}, ?)", [str(f.get("value"))]


_NOT_NULL_COLUMNS = {"o.id", "o.created_ms", "o.updated_ms"}  # NOT NULL in the store's schema


def _order_by(o: ObjectType, sorts: list[Any], defs: Mapping[str, PropertyDef]) -> str:
    if not sorts:
        return "o.id"
    first = sorts[0]  # only one sort rule is applied (FACTS §2)
    if isinstance(first, str):
        name, desc = first.lstrip("-"), first.startswith("-")
    else:
        name, desc = first.get("propertyName"), str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    col, _ = _column(o, name, defs)
    direction = "DESC" if desc else "ASC"
    if col in _NOT_NULL_COLUMNS:
        # no nulls to put last: without the IS NULL term SQLite walks the index in order instead of
        # sorting every matching row for each page (a 72,000-contact window: 100+ ms a page → ~9 ms)
        return f"{col} {direction}, o.id {direction}"
    return f"{col} IS NULL, {col} {direction}, o.id {direction}"

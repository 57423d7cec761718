"""Compile a parsed SOQL query to SQLite over the org's tables (field names checked against the catalog).

Identifiers in the SQL come only from the catalog; every literal is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from crm_pipelines.sandbox.salesforce.catalog import Field, ObjectDef, sobject
from crm_pipelines.sandbox.salesforce.compound import component_names
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import is_valid_id, to_18
from crm_pipelines.sandbox.salesforce.soql import (
    Condition,
    DateLiteral,
    FieldPath,
    Query,
    RelativeDate,
    query_error,
    unescape_like,
)
from crm_pipelines.sandbox.salesforce.values import sf_datetime

_CUSTOM_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
                "name. Please reference your WSDL or the describe call for the appropriate names.")
_SQL_OPS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TEXT_TYPES = {"string", "email", "phone", "url", "picklist", "textarea", "combobox", "multipicklist"}


@dataclass(frozen=True)
class Column:
    """One selected field: where it sits in the SQL row and where it goes in the record."""

    relationships: tuple[str, ...]  # canonical relationship names from the root ("Account",)
    objects: tuple[str, ...]  # the sObject at each relationship step
    field: Field
    index: int
    # a compound address: (key, row index) of each component, its value built from them (FACTS §16)
    parts: tuple[tuple[str, int], ...] = ()

    @property
    def header(self) -> str:
        return ".".join((*self.relationships, self.field.name))


@dataclass
class Compiled:
    sobject: ObjectDef
    columns: list[Column]
    id_columns: dict[tuple[str, ...], int]  # relationship path -> index of that object's Id (for attributes)
    select: str
    source: str  # FROM ... JOIN ... WHERE ...
    params: list[Any]
    order: str | None
    limit: int | None
    offset: int
    count: bool
    # Set when ORDER BY allows keyset paging: row indexes of the order values, and the direction.
    keyset: list[int] = field(default_factory=list)
    keyset_exprs: list[str] = field(default_factory=list)
    keyset_desc: bool = False


class _Builder:
    def __init__(self, query: Query, include_deleted: bool, picklists: bool) -> None:
        self.q = query
        self.picklists = picklists
        root = sobject(query.sobject)
        if root is None:
            raise query_error(
                "INVALID_TYPE", query.text, query.sobject_pos,
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, "
                "be sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
            )
        self.root = root
        self.include_deleted = include_deleted
        self.joins: dict[tuple[str, ...], tuple[str, ObjectDef]] = {(): ("t", root)}
        self.join_sql: list[str] = []
        self.params: list[Any] = []

    def resolve(self, path: FieldPath) -> tuple[str, Field, tuple[str, ...], tuple[str, ...]]:
        """(SQL column expression, field, relationship path, objects along it) for ``Account.Name``."""
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == self.root.name.lower():
            parts = parts[1:]  # "Lead.Email" on Lead is the same as "Email"
        rels: list[str] = []
        objs: list[str] = []
        alias, obj = self.joins[()]
        for part in parts[:-1]:
            ref = next((f for f in obj.ordered if f.relationship and f.relationship.lower() == part.lower()), None)
            if ref is None or len(ref.reference_to) != 1:
                raise query_error(
                    "INVALID_FIELD", self.q.text, path.pos,
                    f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
            rels.append(ref.relationship or part)
            key = tuple(rels)
            target = sobject(ref.reference_to[0])
            assert target is not None
            if key not in self.joins:
                new_alias = f"j{len(self.joins)}"
                self.join_sql.append(f'LEFT JOIN "{target.name}" {new_alias} ON {new_alias}.Id = {alias}."{ref.name}"')
                self.joins[key] = (new_alias, target)
            alias, obj = self.joins[key]
            objs.append(target.name)
        f = obj.lookup(parts[-1], self.picklists)
        if f is None:
            raise query_error("INVALID_FIELD", self.q.text, path.pos,
                              f"No such column '{parts[-1]}' on entity '{obj.name}'. {_CUSTOM_HINT}")
        return f'{alias}."{f.name}"', f, tuple(rels), tuple(objs)

    # -- WHERE --------------------------------------------------------------------------------------
    def condition(self, c: Condition) -> str:
        if c.op in ("AND", "OR"):
            return "(" + f" {c.op} ".join(self.condition(i) for i in c.items) + ")"
        if c.op == "NOT":
            return f"(NOT {self.condition(c.items[0])})"
        assert c.field is not None
        expr, f, _, _ = self.resolve(c.field)
        if f.compound:
            raise self.filter_error(c.field, f"field '{f.name}' can not be filtered in a query call")
        if c.op == "LIKE":
            if f.type not in _TEXT_TYPES and f.type not in ("id", "reference"):
                raise self.filter_error(c.field, f"invalid operator on {f.type} field: LIKE", "INVALID_FIELD")
            self.params.append(c.value)
            return f"{expr} LIKE ? ESCAPE '\\'"
        if c.op in ("IN", "NOT IN"):
            values = [v for v in c.value if v is not None]
            has_null = len(values) != len(c.value)
            marks = ", ".join("?" for _ in values)
            self.params += [self.bind(c.field, f, v) for v in values]
            if c.op == "IN":
                parts = [f"{expr} IN ({marks})"] if values else []
                parts += [f"{expr} IS NULL"] if has_null else []
                return "(" + " OR ".join(parts or ["0"]) + ")"
            parts = [f"({expr} IS NULL OR {expr} NOT IN ({marks}))"] if values else []
            parts += [f"{expr} IS NOT NULL"] if has_null else []
            return "(" + " AND ".join(parts or ["1"]) + ")"
        if c.value is None:
            if c.op not in ("=", "!=", "<>"):
                raise self.filter_error(c.field, "invalid operator on null value", "INVALID_QUERY_FILTER_OPERATOR")
            return f"{expr} IS NULL" if c.op == "=" else f"{expr} IS NOT NULL"
        if isinstance(c.value, RelativeDate):
            return self.relative(expr, f, c.op, c.value, c.field)
        value = self.bind(c.field, f, c.value)
        self.params.append(value)
        if c.op in ("!=", "<>"):
            # SOQL's != matches nulls too (a null Email is "not equal" to any address).
            return f"({expr} IS NULL OR {expr} != ?)"
        return f"{expr} {_SQL_OPS[c.op]} ?"

    def filter_error(self, path: FieldPath, detail: str, code: str = "INVALID_FIELD") -> SalesforceError:
        return query_error(code, self.q.text, path.pos, detail)

    def bind(self, path: FieldPath, f: Field, value: Any) -> Any:
        """The literal as stored in the column, or the error Salesforce gives for a mismatched type."""
        kind = f.type
        quoted = isinstance(value, str)
        if kind in _TEXT_TYPES:
            if not quoted:
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                              "string and should be enclosed in quotes")
            return unescape_like(value)
        if kind in ("id", "reference"):
            if not quoted:
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type id "
                                              "and should be enclosed in quotes")
            text = unescape_like(value)
            if not is_valid_id(text):
                raise self.filter_error(path, f"invalid ID field: {text}", "INVALID_QUERY_FILTER_OPERATOR")
            return to_18(text)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                              "boolean and should not be enclosed in quotes")
            return int(value)
        if kind in ("int", "double", "currency", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                              f"{'double' if kind != 'int' else 'int'} and should not be enclosed "
                                              "in quotes")
            return value
        if kind == "datetime":
            if not isinstance(value, dt.datetime):
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                              "dateTime and should not be enclosed in quotes")
            return sf_datetime(value)
        if kind == "date":
            if not isinstance(value, DateLiteral):
                raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                              "date and should not be enclosed in quotes")
            return value.value
        return value

    def relative(self, expr: str, f: Field, op: str, value: RelativeDate, path: FieldPath) -> str:
        if f.type not in ("date", "datetime"):
            raise self.filter_error(path, f"value of filter criterion for field '{f.name}' must be of type "
                                          f"{f.type} and should be enclosed in quotes")
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        day = dt.timedelta(days=1)
        start, end = {
            "TODAY": (today, today + day),
            "YESTERDAY": (today - day, today),
            "TOMORROW": (today + day, today + 2 * day),
            "LAST_N_DAYS": (today - value.n * day, today + day),
            "NEXT_N_DAYS": (today + day, today + (value.n + 1) * day),
            "N_DAYS_AGO": (today - value.n * day, today - (value.n - 1) * day),
            "THIS_MONTH": (today.replace(day=1), (today.replace(day=1) + 32 * day).replace(day=1)),
        }[value.name]
        lo, hi = ((start.date().isoformat(), end.date().isoformat()) if f.type == "date"
                  else (sf_datetime(start), sf_datetime(end)))
        templates = {"=": "({e} >= ? AND {e} < ?)", "!=": "({e} < ? OR {e} >= ?)", "<>": "({e} < ? OR {e} >= ?)",
                     "<": "{e} < ?", "<=": "{e} < ?", ">": "{e} >= ?", ">=": "{e} >= ?"}
        bound = {"=": [lo, hi], "!=": [lo, hi], "<>": [lo, hi], "<": [lo], "<=": [hi], ">": [hi], ">=": [lo]}
        self.params += bound[op]
        return templates[op].format(e=expr)


def compile_query(query: Query, *, include_deleted: bool, picklists: bool = False) -> Compiled:
    b = _Builder(query, include_deleted, picklists)
    columns: list[Column] = []
    id_columns: dict[tuple[str, ...], int] = {}
    select: list[str] = ["t.rowid"]
    seen: set[str] = set()
    for path in query.fields:
        expr, f, rels, objs = b.resolve(path)
        key = ".".join((*rels, f.name)).lower()
        if key in seen:
            raise query_error("MALFORMED_QUERY", query.text, path.pos, f"duplicate field selected: {path.text}")
        seen.add(key)
        if f.compound:
            alias = expr.split(".", 1)[0]
            parts = tuple((k, len(select) + i) for i, (k, _) in enumerate(component_names(f, picklists)))
            columns.append(Column(rels, objs, f, len(select), parts))
            select.extend(f'{alias}."{name}"' for _, name in component_names(f, picklists))
        else:
            columns.append(Column(rels, objs, f, len(select)))
            select.append(expr)
        for depth in range(len(rels) + 1):
            prefix = rels[:depth]
            if prefix not in id_columns:
                id_columns[prefix] = len(select)
                select.append(f"{b.joins[prefix][0]}.Id")
    where: list[str] = [] if include_deleted else ["t.IsDeleted = 0"]
    if query.where is not None:
        where.append(b.condition(query.where))
    order_parts = []
    keyable = bool(query.order) and len({desc for _, desc, _ in query.order}) == 1
    keyset_exprs: list[str] = []
    for path, desc, nulls_first in query.order:
        expr, f, rels, _ = b.resolve(path)
        if f.compound:
            raise query_error("INVALID_FIELD", query.text, path.pos,
                              f"field '{f.name}' can not be sorted in a query call")
        nulls = nulls_first if nulls_first is not None else not desc
        order_parts.append(f"{expr} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls else 'LAST'}")
        # Keyset paging needs non-null root columns (a row-value comparison with NULL matches nothing).
        keyable = keyable and not rels and not f.nillable and nulls_first is None
        keyset_exprs.append(expr)
    keyset: list[int] = []
    if keyable:
        keyset = list(range(len(select), len(select) + len(keyset_exprs)))
        select.extend(keyset_exprs)
    source = f'FROM "{b.root.name}" t ' + " ".join(b.join_sql)
    if where:
        source += " WHERE " + " AND ".join(where)
    return Compiled(
        sobject=b.root,
        columns=columns,
        id_columns=id_columns,
        select="SELECT " + ", ".join(select) + " ",
        source=source,
        params=b.params,
        order=", ".join(order_parts) if order_parts else None,
        limit=query.limit,
        offset=query.offset or 0,
        count=query.count,
        keyset=keyset,
        keyset_exprs=keyset_exprs if keyset else [],
        keyset_desc=bool(keyset) and query.order[0][1],
    )

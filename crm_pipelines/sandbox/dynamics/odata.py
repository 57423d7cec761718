"""OData v4 query options as Dataverse reads them: ``$select``, ``$filter``, ``$orderby``, ``$expand``, ``Prefer``.

``$filter`` is parsed by ``odata-query``'s grammar into an AST and compiled here into *parameterised* SQL:
every literal becomes a ``?`` parameter, every identifier is checked against the table's attributes, so no
text from a query string ever reaches SQL (``o'brien`` is data, never syntax).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import TEXT_TYPES, Attribute, Table

_LEXER = ODataLexer()
_PARSER = ODataParser()

_COMPARATORS = {ast.Eq: "=", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# -- $select / $orderby / $expand ------------------------------------------------------------------------
def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes: ``a,b($select=c,d),e`` -> three parts."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_options(text: str) -> dict[str, str]:
    """Nested options of an ``$expand`` item: ``$select=a,b;$filter=...``."""
    out: dict[str, str] = {}
    for part in split_top_level(text, ";"):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ExpandItem:
    name: str
    options: dict[str, str] = field(default_factory=dict)


def parse_expand(text: str | None) -> list[ExpandItem]:
    items = []
    for part in split_top_level(text or ""):
        name, paren, rest = part.partition("(")
        items.append(ExpandItem(name.strip(), parse_options(rest[:-1]) if paren else {}))
    return items


def parse_select(table: Table, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in table.by_column:
            raise errors.no_property(n, table.logical_name)
    return names


def parse_orderby(table: Table, text: str | None) -> list[tuple[str, bool]]:
    """[(column, descending)] in the order given."""
    out = []
    for part in split_top_level(text or ""):
        bits = part.split()
        name = bits[0]
        if name not in table.by_column:
            raise errors.no_property(name, table.logical_name)
        direction = bits[1].lower() if len(bits) > 1 else "asc"
        if direction not in ("asc", "desc") or len(bits) > 2:
            raise errors.bad_request(f"Syntax error in $orderby: '{part}'.", errors.PROPERTY_NOT_FOUND)
        out.append((name, direction == "desc"))
    return out


# -- Prefer ------------------------------------------------------------------------------------------
_PREFER = re.compile(r'\s*([\w.\-]+)\s*(?:=\s*("(?:[^"]*)"|[^,]*))?\s*(?:,|$)')


@dataclass
class Prefer:
    maxpagesize: int | None = None
    annotations: list[str] = field(default_factory=list)
    track_changes: bool = False
    return_representation: bool = False
    continue_on_error: bool = False

    def wants(self, annotation: str) -> bool:
        """``*``, an exact name or a ``Namespace.*`` pattern, as odata.include-annotations allows."""
        for pattern in self.annotations:
            if pattern == "*" or pattern == annotation:
                return True
            if pattern.endswith(".*") and annotation.startswith(pattern[:-1]):
                return True
        return False


def parse_prefer(header: str | None) -> Prefer:
    out = Prefer()
    for m in _PREFER.finditer(header or ""):
        key, value = m.group(1).lower(), (m.group(2) or "").strip().strip('"')
        if key == "odata.maxpagesize" and value.isdigit():
            out.maxpagesize = int(value)
        elif key == "odata.include-annotations":
            out.annotations = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "odata.track-changes":
            out.track_changes = True
        elif key == "return" and value == "representation":
            out.return_representation = True
        elif key == "odata.continue-on-error":
            out.continue_on_error = True
    return out


# -- paging cookies ------------------------------------------------------------------------------------
def make_skiptoken(page: int, state: dict[str, Any], tracking: bool = False) -> str:
    """Dataverse's skiptoken is a ``<cookie>`` element (FACTS §C); its paging cookie carries our keyset state."""
    cookie = base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
    return f'<cookie pagenumber="{page}" pagingcookie="{cookie}" istracking="{tracking}" />'


def read_skiptoken(token: str) -> tuple[int, dict[str, Any]]:
    m = re.search(r'pagenumber="(\d+)"[^>]*pagingcookie="([^"]*)"', token)
    if not m:
        raise errors.bad_request("The $skiptoken is not valid.")
    raw = m.group(2)
    try:
        return int(m.group(1)), orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise errors.bad_request("The $skiptoken is not valid.") from None


# -- $filter -------------------------------------------------------------------------------------------
class FilterCompiler:
    """An odata-query AST to a parameterised SQLite ``WHERE`` clause over one table's columns."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.params: list[Any] = []

    def compile(self, text: str) -> tuple[str, list[Any]]:
        try:
            tree = _PARSER.parse(_LEXER.tokenize(collections_as_lists(text)))
        except (ODataException, Exception) as e:  # the grammar raises its own and sly's exceptions
            raise errors.bad_request(f"Syntax error in $filter '{text}': {e}", errors.PROPERTY_NOT_FOUND) from None
        self.params = []
        return self.visit(tree), self.params

    def visit(self, node: ast._Node) -> str:
        if isinstance(node, ast.BoolOp):
            op = "AND" if isinstance(node.op, ast.And) else "OR"
            return f"({self.visit(node.left)} {op} {self.visit(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(NOT {self.visit(node.operand)})"
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Identifier):  # a bare boolean column
            attr = self._attribute(node)
            return f"({attr.column} = 1)"
        raise errors.bad_request(f"The $filter expression '{type(node).__name__}' is not supported.")

    def _attribute(self, node: ast._Node) -> Attribute:
        if not isinstance(node, ast.Identifier) or node.namespace:
            raise errors.bad_request("A $filter comparison needs a property on one side and a literal on the other.")
        attr = self.table.by_column.get(node.name)
        if attr is None:
            raise errors.no_property(node.name, self.table.logical_name)
        return attr

    def _compare(self, node: ast.Compare) -> str:
        left, right, op = node.left, node.right, node.comparator
        if not isinstance(left, ast.Identifier):  # `5 lt x` reads as `x gt 5`
            left, right = right, left
            op = {ast.Lt: ast.Gt(), ast.Gt: ast.Lt(), ast.LtE: ast.GtE(), ast.GtE: ast.LtE()}.get(type(op), op)
        attr = self._attribute(left)
        if isinstance(op, ast.In):
            if not isinstance(right, ast.List):
                raise errors.bad_request("The 'in' operator needs a list of literals.")
            marks = ", ".join(self._param(attr, v) for v in right.val)
            return f"({attr.column} IN ({marks}))"
        if isinstance(right, ast.Null):
            if isinstance(op, ast.Eq):
                return f"({attr.column} IS NULL)"
            if isinstance(op, ast.NotEq):
                return f"({attr.column} IS NOT NULL)"
            raise errors.bad_request("null can only be compared with eq or ne.")
        sql_op = _COMPARATORS.get(type(op))
        if sql_op is None:
            raise errors.bad_request(f"Operator {type(op).__name__} is not supported in $filter.")
        if (fraction := _within_second(attr, right)) is not None:
            return self._compare_fraction(attr, type(op), fraction)
        return f"({attr.column} {sql_op} {self._param(attr, right)})"

    def _compare_fraction(self, attr: Attribute, op: type, instant: dt.datetime) -> str:
        """A time column against an instant between two whole seconds. The table keeps whole seconds (as the
        Web API returns them), so the instant is compared as what it is, not cut to its second: a row stamped
        11:07:05 is ``lt 11:07:05.6`` (a window ending within the second a change was made in still holds it),
        and never ``eq`` it."""
        if op is ast.Eq:
            return "(0 = 1)"
        if op is ast.NotEq:
            return f"({attr.column} IS NOT NULL)"
        self.params.append(iso(instant))  # the whole second before the instant
        return f"({attr.column} {'<=' if op in (ast.Lt, ast.LtE) else '>'} ?)"

    def _call(self, node: ast.Call) -> str:
        if isinstance(node.func, ast.Identifier) and node.func.namespace == ("Microsoft", "Dynamics", "CRM"):
            return self._query_function(node.func.name, node.args)
        name = node.func.name.lower() if isinstance(node.func, ast.Identifier) else ""
        patterns = {"contains": "%{}%", "startswith": "{}%", "endswith": "%{}"}
        if name not in patterns or len(node.args) != 2 or not isinstance(node.args[1], ast.String):
            raise errors.bad_request(f"The function '{name or node.func}' is not supported in $filter.")
        attr = self._attribute(node.args[0])
        if attr.type not in TEXT_TYPES:
            raise errors.bad_request(f"The function '{name}' needs a string property, not '{attr.column}'.")
        escaped = re.sub(r"([\\%_])", r"\\\1", node.args[1].val)
        self.params.append(patterns[name].format(escaped))
        return f"({attr.column} LIKE ? ESCAPE '\\')"

    def _query_function(self, name: str, args: list[ast._Node]) -> str:
        """Dataverse's query functions, e.g. ``Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=[…])``."""
        named = {a.name.name: a.param for a in args if isinstance(a, ast.NamedParam)}
        prop = named.get("PropertyName")
        if not isinstance(prop, ast.String):
            raise errors.bad_request(f"Microsoft.Dynamics.CRM.{name} needs PropertyName.")
        attr = self.table.by_column.get(prop.val) or self.table.by_name.get(prop.val)
        if attr is None:
            raise errors.no_property(prop.val, self.table.logical_name)
        if name in ("In", "NotIn"):
            values = named.get("PropertyValues")
            if isinstance(values, ast._Literal) and not isinstance(values, ast.List | ast.Null):
                values = ast.List([values])  # a one-item collection parses as a parenthesised literal
            if not isinstance(values, ast.List) or not values.val:
                raise errors.bad_request(f"Microsoft.Dynamics.CRM.{name} needs PropertyValues.")
            for v in values.val:  # values arrive as strings (Collection(Edm.String)); typed per column
                self.params.append(_typed(attr, v, self.table))
            marks = ", ".join("?" * len(values.val))
            return f"({attr.column} {'NOT ' if name == 'NotIn' else ''}IN ({marks}))"
        value = named.get("PropertyValue")
        now = dt.datetime.now(dt.UTC)
        if name in ("LastXDays", "LastXHours") and isinstance(value, ast.Integer | ast.String):
            unit = "days" if name == "LastXDays" else "hours"
            start = now - dt.timedelta(**{unit: int(value.val)})
            if unit == "days":
                start = start.replace(hour=0, minute=0, second=0, microsecond=0)
            self.params += [iso(start), iso(now)]
            return f"({attr.column} >= ? AND {attr.column} <= ?)"
        if name in ("OnOrAfter", "OnOrBefore") and isinstance(value, ast.String | ast.Date | ast.DateTime):
            day = str(value.val)[:10]
            if name == "OnOrAfter":
                self.params.append(day if attr.date_only else f"{day}T00:00:00Z")
                return f"({attr.column} >= ?)"
            self.params.append(day if attr.date_only else f"{day}T23:59:59Z")
            return f"({attr.column} <= ?)"
        raise errors.bad_request(f"The query function 'Microsoft.Dynamics.CRM.{name}' is not supported by the sandbox.")

    def _param(self, attr: Attribute, literal: ast._Node) -> str:
        self.params.append(literal_value(attr, literal, self.table))
        return "?"


def _within_second(attr: Attribute, literal: ast._Node) -> dt.datetime | None:
    """The instant a date-time literal names when it has a fraction of a second and the column holds times."""
    if attr.type != "DateTime" or attr.date_only or not isinstance(literal, ast.DateTime):
        return None
    value = parse_datetime(literal.val)
    return value if value.microsecond else None


def _typed(attr: Attribute, literal: ast._Node, table: Table) -> Any:
    if isinstance(literal, ast.String) and attr.type not in TEXT_TYPES:
        text = literal.val
        if attr.type in ("Integer", "BigInt", "Picklist", "State", "Status") and text.lstrip("-").isdigit():
            return int(text)
        if attr.type in ("Uniqueidentifier", "Lookup", "Customer", "Owner"):
            return text.lower()
    return literal_value(attr, literal, table)


def collections_as_lists(text: str) -> str:
    """Rewrite JSON collection literals (``["1","2"]``, used by Dataverse query functions) as OData lists.

    Brackets outside string literals can only be collection literals; each is decoded as JSON and written
    back as ``('1','2')`` with quotes doubled, which the OData grammar parses.
    """
    if "[" not in text:
        return text
    out, i, quoted = [], 0, False
    decoder = json.JSONDecoder()
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif ch == "[" and not quoted:
            try:
                values, end = decoder.raw_decode(text, i)
            except ValueError:
                raise errors.bad_request(f"Invalid collection literal in $filter at position {i}.") from None
            items = [("'" + v.replace("'", "''") + "'") if isinstance(v, str) else json.dumps(v) for v in values]
            out.append("(" + ",".join(items) + ")")
            i = end
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def literal_value(attr: Attribute, literal: ast._Node, table: Table) -> Any:
    """A literal converted to the column's storage form, or the Web API's type error."""
    wrong = errors.bad_request(
        f"A binary operator with incompatible types was detected. Found operand types "
        f"'{attr.odata_type}' and '{type(literal).__name__}' for property '{attr.column}'.",
        errors.PROPERTY_NOT_FOUND,
    )
    t = attr.type
    if isinstance(literal, ast.String):
        if t in TEXT_TYPES:
            return literal.val
        raise wrong
    if isinstance(literal, ast.GUID):
        if t in ("Uniqueidentifier", "Lookup", "Customer", "Owner"):
            return literal.val.lower()
        raise wrong
    if isinstance(literal, ast.Boolean):
        if t == "Boolean":
            return 1 if literal.val.lower() == "true" else 0
        raise wrong
    if isinstance(literal, ast.Integer | ast.Float):
        if t in ("Integer", "BigInt", "Picklist", "State", "Status", "Money", "Decimal", "Double"):
            return float(literal.val) if isinstance(literal, ast.Float) or t == "Money" else int(literal.val)
        raise wrong
    if isinstance(literal, ast.DateTime):
        if t == "DateTime":
            value = parse_datetime(literal.val)
            return value.date().isoformat() if attr.date_only else iso(value)
        raise wrong
    if isinstance(literal, ast.Date):
        if t == "DateTime":
            return literal.val if attr.date_only else f"{literal.val}T00:00:00Z"
        raise wrong
    raise wrong

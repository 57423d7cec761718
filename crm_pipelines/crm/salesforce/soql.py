"""SOQL text built only here, from a constant template, checked names and escaped literals (FACTS §6).

``soql("SELECT {fields} FROM {obj} WHERE Email = {email}", fields=Names(["Id"]), obj=Name("Lead"),
email="o'brien@example.com")`` fills each ``{placeholder}`` with :func:`literal` of its value, or with a
checked identifier for :class:`Name` / :class:`Names`. No value is ever concatenated into query text
anywhere else in the connector, so no data can become query syntax.

Literals the Salesforce way: strings in single quotes with backslash escapes (``\\' \\" \\\\ \\n \\r \\t \\b
\\f``, other control characters as ``\\uXXXX``); dates ``YYYY-MM-DD`` and datetimes in UTC, both unquoted;
``IN`` lists as ``('a', 'b')``; ``null``, ``true``/``false``; in a LIKE pattern ``%`` and ``_`` of the
text are escaped too so only the wildcards the caller asked for match.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

# Standard and custom names (``Email``, ``Foo__c``), relationship paths (``Account.Name``).
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


class Name(str):
    """An object or field name, inserted as is after checking it is one (never a value)."""

    def __new__(cls, value: str) -> Name:
        if not _IDENT.fullmatch(value):
            raise ValueError(f"not a SOQL name: {value!r}")
        return super().__new__(cls, value)


class Names(tuple):
    """A field list, rendered ``A, B, C``."""

    def __new__(cls, names: Iterable[str]) -> Names:
        checked = tuple(Name(n) for n in names)
        if not checked:
            raise ValueError("a SOQL field list cannot be empty")
        return super().__new__(cls, checked)


@dataclass(frozen=True)
class Like:
    """A LIKE pattern matching ``text`` literally: ``contains``, ``starts`` with, ``ends`` with, or ``exact``."""

    text: str
    match: Literal["contains", "starts", "ends", "exact"] = "contains"


def escape(text: str) -> str:
    """The body of a string literal: backslash escapes, other control characters as ``\\uXXXX``."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def datetime_literal(value: dt.datetime) -> str:
    """UTC, ``Z``; milliseconds only when there are any (SystemModstamp keeps milliseconds)."""
    if value.tzinfo is None:
        raise ValueError("a naive datetime has no instant; SOQL needs an aware one")
    utc = value.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = utc.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def literal(value: Any) -> str:
    """One value as a SOQL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("NaN and infinity have no SOQL literal")
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return datetime_literal(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return f"'{escape(value)}'"
    if isinstance(value, Like):
        body = escape(value.text).replace("%", "\\%").replace("_", "\\_")
        before = "%" if value.match in ("contains", "ends") else ""
        after = "%" if value.match in ("contains", "starts") else ""
        return f"'{before}{body}{after}'"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        if not items:
            raise ValueError("an IN list cannot be empty (SOQL rejects `IN ()`)")
        return "(" + ", ".join(literal(v) for v in items) + ")"
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def soql(template: str, /, **values: Any) -> str:
    """``template`` with every ``{name}`` replaced by the literal (or checked name) of ``values[name]``."""
    out = []
    for text, field, spec, conversion in string.Formatter().parse(template):
        out.append(text)
        if field is None:
            continue
        if spec or conversion or field not in values:
            raise ValueError(f"bad SOQL placeholder {{{field}}}")
        value = values[field]
        if isinstance(value, Names):
            out.append(", ".join(value))
        elif isinstance(value, Name):
            out.append(str(value))
        else:
            out.append(literal(value))
    return "".join(out)

"""OData query text for the Dataverse Web API, built only from checked names and escaped literals.

Every value that reaches ``$filter`` or a key segment goes through :func:`literal`: strings are quoted with
single quotes doubled (``o'brien`` → ``'o''brien'``), GUIDs are bare, datetimes are UTC ``…Z`` (FACTS §A
filter helpers), so no data can ever become query syntax. Property names are checked against the OData
identifier form for the same reason.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_STRING_FUNCTIONS = {"contains", "startswith", "endswith"}


def name(text: str) -> str:
    """A property or entity-set name, refused unless it is a plain OData identifier."""
    if not _IDENTIFIER.match(text):
        raise ValueError(f"not an OData identifier: {text!r}")
    return text


def literal(value: Any) -> str:
    """``value`` as an OData v4 literal, the way Dataverse parses it."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity have no OData literal")
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous; pass an aware one (it is sent in UTC)")
        return utc_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no OData literal for {type(value).__name__}")


def utc_text(value: dt.datetime) -> str:
    """Edm.DateTimeOffset in UTC, with microseconds only when there are any."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Filter:
    """A ``$filter`` expression; combine with ``&`` and ``|``, negate with ``~``."""

    text: str

    def __and__(self, other: Filter) -> Filter:
        return Filter(f"({self.text} and {other.text})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(f"({self.text} or {other.text})")

    def __invert__(self) -> Filter:
        return Filter(f"not ({self.text})")

    def __str__(self) -> str:
        return self.text


def where(prop: str, op: str, value: Any) -> Filter:
    """``prop op value``: a comparison (eq/ne/gt/ge/lt/le) or a string function (contains/startswith/endswith)."""
    if op in _COMPARISONS:
        return Filter(f"{name(prop)} {op} {literal(value)}")
    if op in _STRING_FUNCTIONS:
        if not isinstance(value, str):
            raise TypeError(f"{op} needs a string")
        return Filter(f"{op}({name(prop)},{literal(value)})")
    raise ValueError(f"unknown operator {op!r}")


def one_of(prop: str, values: Iterable[Any]) -> Filter:
    """Dataverse's ``In`` query function; its values travel as a collection of strings (FACTS §A)."""
    items = [str(v) if not isinstance(v, str) else v for v in values]
    if not items:
        raise ValueError("one_of needs at least one value")
    rendered = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items)
    return Filter(f"Microsoft.Dynamics.CRM.In(PropertyName={literal(name(prop))},PropertyValues=[{rendered}])")


def all_of(*filters: Filter) -> Filter:
    if not filters:
        raise ValueError("all_of needs at least one filter")
    out = filters[0]
    for f in filters[1:]:
        out = out & f
    return out


def modified_between(start: dt.datetime, end: dt.datetime, prop: str = "modifiedon") -> Filter:
    """Rows whose ``modifiedon`` lies in [start, end)."""
    return where(prop, "ge", start) & where(prop, "lt", end)


def entity_path(entity_set: str, key: str | uuid.UUID | dict[str, Any]) -> str:
    """``contacts(<guid>)`` or, by alternate key, ``contacts(emailaddress1='a@b')``."""
    if isinstance(key, dict):
        if not key:
            raise ValueError("an alternate key needs at least one value")
        return f"{name(entity_set)}(" + ",".join(f"{name(k)}={literal(v)}" for k, v in key.items()) + ")"
    return f"{name(entity_set)}({guid(key)})"


def guid(value: str | uuid.UUID) -> str:
    """A GUID in the Web API's lower-case form; anything else is refused, never pasted into a URL."""
    return str(uuid.UUID(str(value)))

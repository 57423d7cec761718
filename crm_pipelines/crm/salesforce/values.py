"""Values in the form the Salesforce REST API demands (SPEC OPS-9), and back.

Out, by the field's describe type: ``date`` as ``YYYY-MM-DD`` (a datetime keeps its calendar date in UTC),
``datetime`` as UTC ``YYYY-MM-DDTHH:MM:SS.sssZ`` (a naive datetime has no instant and is refused; a bare
date is midnight UTC), numbers as JSON numbers (NaN/infinity refused), booleans as JSON booleans, text as
text. Text longer than the field's length is cut to it and the cut is *reported* (OPS-9: never silently
truncated); with ``truncate=False`` it is sent whole and Salesforce rejects that record with
``STRING_TOO_LONG``. In: Salesforce's timestamps (``2013-05-20T20:49:32.000+0000``) as aware datetimes, and
Bulk API CSV cells typed as the REST API's JSON would have them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_pipelines.crm.salesforce.describe import FieldInfo

TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox", "encryptedstring"}
NUMBER_TYPES = {"double", "currency", "percent"}


@dataclass(frozen=True)
class Truncation:
    field: str
    length: int  # the value's length before the cut
    max_length: int


@dataclass
class Converted:
    body: dict[str, Any]
    truncated: list[Truncation] = field(default_factory=list)


def datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("a naive datetime has no instant; Salesforce datetimes need an aware one")
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def value_out(value: Any, info: FieldInfo | None = None) -> Any:
    """One value in its REST JSON form for a field of ``info``'s type (untyped when the field is unknown)."""
    kind = info.type if info else None
    if value is None or isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{info.name}: a naive datetime has no calendar date in UTC")  # type: ignore[union-attr]
        return value.astimezone(dt.UTC).date().isoformat()
    if kind == "datetime" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return datetime_text(dt.datetime.combine(value, dt.time(), dt.UTC))
    if isinstance(value, dt.datetime):
        return datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity cannot be written to Salesforce")
        return int(value) if kind == "int" and value.is_integer() else value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int | str):
        return value
    raise TypeError(f"no Salesforce form for {type(value).__name__}")


def to_salesforce(fields: Mapping[str, FieldInfo], record: Mapping[str, Any], *, truncate: bool = True) -> Converted:
    """A record of Python values as the JSON body of a write, with every cut to a field's length reported."""
    out = Converted({})
    by_lower = {name.lower(): info for name, info in fields.items()}  # field names are case-insensitive
    for key, value in record.items():
        if key == "attributes":
            out.body[key] = value
            continue
        info = fields.get(key) or by_lower.get(key.lower())
        converted = value_out(value, info)
        if isinstance(converted, str) and info is not None and info.length and len(converted) > info.length:
            out.truncated.append(Truncation(key, len(converted), info.length))
            if truncate:
                converted = converted[: info.length]
        out.body[key] = converted
    return out


def parse_datetime(text: str | None) -> dt.datetime | None:
    """``2013-05-20T20:49:32.000+0000`` (or ``…Z``, ``…+00:00``) → an aware UTC datetime."""
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    stamp = dt.datetime.fromisoformat(value)
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def cell_in(text: str, info: FieldInfo | None) -> Any:
    """A Bulk API CSV cell as the REST API's JSON gives the value (empty = null, FACTS §5 types)."""
    if text == "":
        return None
    kind = info.type if info else None
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    if kind in NUMBER_TYPES:
        return float(text)
    return text


def rows_in(header: Sequence[str], rows: Sequence[Sequence[str]], fields: Mapping[str, FieldInfo]) -> list[dict]:
    """CSV rows as records keyed by the header's field names."""
    infos = [fields.get(name) for name in header]
    return [{name: cell_in(cell, info) for name, cell, info in zip(header, row, infos, strict=True)} for row in rows]

"""Values in the form the Dataverse Web API demands (SPEC OPS-9), and back.

Out: Edm.DateTimeOffset as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (an aware datetime is required: a naive one has no
instant), date-only columns as ``YYYY-MM-DD``, Money/Decimal as JSON numbers, GUIDs lower-case, option sets
as their integer values, lookups as ``<navigation>@odata.bind: "/<set>(<guid>)"`` (writing ``_x_value`` is
refused by the platform). Text longer than the column allows is cut and the cut is *reported* (OPS-9: never
silently truncated). In: the Web API's timestamps as aware datetimes.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_pipelines.crm.dynamics.odata import entity_path, name, utc_text

# Text column lengths of the standard tables the sync writes (FACTS §I; Dataverse's default MaxLength).
MAX_LENGTH: dict[str, dict[str, int]] = {
    "contacts": {
        "firstname": 50,
        "lastname": 50,
        "emailaddress1": 100,
        "telephone1": 50,
        "mobilephone": 50,
        "jobtitle": 100,
        "description": 2000,
        "address1_city": 80,
        "address1_stateorprovince": 50,
        "address1_country": 80,
    },
    "leads": {
        "subject": 300,
        "firstname": 50,
        "lastname": 50,
        "companyname": 100,
        "emailaddress1": 100,
        "telephone1": 50,
        "jobtitle": 100,
        "address1_city": 80,
        "address1_stateorprovince": 50,
        "address1_country": 80,
    },
    "accounts": {
        "name": 160,
        "accountnumber": 20,
        "websiteurl": 200,
        "telephone1": 50,
        "emailaddress1": 100,
        "description": 2000,
        "address1_city": 80,
        "address1_stateorprovince": 50,
        "address1_country": 80,
    },
    "opportunities": {"name": 300, "description": 2000, "stepname": 200},
    "systemusers": {"firstname": 256, "lastname": 256, "internalemailaddress": 100},
}
# Date-only columns (Edm.Date): a datetime given for them keeps its calendar date in UTC.
DATE_ONLY: dict[str, set[str]] = {"opportunities": {"estimatedclosedate", "actualclosedate"}}


@dataclass(frozen=True)
class Lookup:
    """A reference to another row: written as ``<navigation>@odata.bind`` (FACTS §D)."""

    entity_set: str
    id: str | uuid.UUID

    def bind(self) -> str:
        return "/" + entity_path(self.entity_set, self.id)


@dataclass(frozen=True)
class Truncation:
    column: str
    length: int  # the value's length before the cut
    max_length: int


@dataclass
class Converted:
    body: dict[str, Any]
    truncated: list[Truncation] = field(default_factory=list)


def to_web_api(entity_set: str, record: dict[str, Any]) -> Converted:
    """A record of Python values as the JSON body a create/update/upsert sends."""
    limits = MAX_LENGTH.get(entity_set, {})
    date_only = DATE_ONLY.get(entity_set, set())
    out = Converted({})
    for key, value in record.items():
        if "@" in key:  # an annotation the caller wrote itself (e.g. x@odata.bind): passed through
            out.body[key] = value
            continue
        column = name(key)
        if isinstance(value, Lookup):
            out.body[f"{column}@odata.bind"] = value.bind()
            continue
        if column in date_only and isinstance(value, dt.date):
            value = value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value
        converted = value_out(value)
        if isinstance(converted, str) and column in limits and len(converted) > limits[column]:
            out.truncated.append(Truncation(column, len(converted), limits[column]))
            converted = converted[: limits[column]]
        out.body[column] = converted
    return out


def value_out(value: Any) -> Any:
    """One value in its Web API JSON form."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity cannot be written to Dataverse")
        return value
    if isinstance(value, Decimal):
        # JSON has one number type; Dataverse money keeps 4 decimals, well inside a double's precision
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no instant; Edm.DateTimeOffset needs an aware one")
        return utc_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"no Dataverse form for {type(value).__name__}")


def parse_timestamp(text: str | None) -> dt.datetime | None:
    """``2024-01-01T12:00:00Z`` (Edm.DateTimeOffset as the Web API writes it) → an aware UTC datetime."""
    if not text:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

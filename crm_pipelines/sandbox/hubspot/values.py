"""Property values as HubSpot accepts and returns them: always strings on the wire (FACTS §8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from email_validator import EmailNotValidError, validate_email

from crm_pipelines.sandbox.hubspot.catalog import PropertyDef

UTC = dt.UTC


def iso_ms(ms: int) -> str:
    """``2024-05-01T10:00:00.123Z``: the timestamp format of ``createdAt`` and datetime properties."""
    return dt.datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp_ms(value: Any) -> int | None:
    """Epoch milliseconds or ISO 8601 (what HubSpot accepts for datetime values and filters)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


class InvalidValue(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def normalize(prop: PropertyDef, value: Any, allowed: set[str] | None) -> str | None:
    """The stored string for ``value``, None to clear the property; raises InvalidValue.

    ``allowed`` is the option set of enumeration properties whose options live elsewhere (owners,
    pipelines, stages).
    """
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if prop.type == "number":
        try:
            float(text)
        except ValueError:
            raise InvalidValue("INVALID_DECIMAL", f"{text} was not a valid number.") from None
        return text
    if prop.type == "bool":
        if text.lower() not in ("true", "false"):
            raise InvalidValue("INVALID_BOOLEAN", f"{text} was not a valid boolean (true or false).")
        return text.lower()
    if prop.type == "datetime":
        ms = parse_timestamp_ms(text)
        if ms is None:
            raise InvalidValue("INVALID_LONG", f"{text} was not a valid long.")
        return iso_ms(ms)
    if prop.type == "date":
        ms = parse_timestamp_ms(text)
        if ms is None:
            raise InvalidValue("INVALID_DATE", f"{text} was not a valid date.")
        if ms % 86_400_000:
            # OPS-9: date-only properties must be midnight UTC; HubSpot rejects anything else.
            at = dt.datetime.fromtimestamp(ms / 1000, UTC)
            raise InvalidValue(
                "INVALID_DATE",
                f"{text} is at {at.hour}:{at.minute}:{at.second}.{at.microsecond // 1000} UTC, not midnight!",
            )
        return dt.datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    if prop.type == "enumeration":
        options = allowed if allowed is not None else {v for v, _ in prop.options}
        if text not in options:
            raise InvalidValue("INVALID_OPTION", f"{text} was not one of the allowed options: {sorted(options)[:50]}")
        return text
    if prop.name == "email":
        try:
            validate_email(text.strip(), check_deliverability=False)
        except EmailNotValidError:
            raise InvalidValue("INVALID_EMAIL", f"Email address {text} is invalid") from None
    return text

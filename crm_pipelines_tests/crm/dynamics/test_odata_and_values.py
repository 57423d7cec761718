"""OData literals and value conversion for the Dataverse Web API, without a server."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm_pipelines.crm.dynamics.odata import entity_path, literal, modified_between, name, one_of, where
from crm_pipelines.crm.dynamics.values import Lookup, parse_timestamp, to_web_api, value_out

CET = dt.timezone(dt.timedelta(hours=1))


def test_literals_escape_quotes_and_type_guids_and_datetimes() -> None:
    """Issue 5: OData built only through a function that escapes literals (quotes doubled, GUID, datetime)."""
    assert literal("o'brien") == "'o''brien'"
    assert literal("it''s") == "'it''''s'"
    assert literal(None) == "null" and literal(True) == "true" and literal(3) == "3"
    assert literal(Decimal("12.50")) == "12.50"
    g = uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")
    assert literal(g) == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert literal(dt.datetime(2024, 3, 1, 13, 0, tzinfo=CET)) == "2024-03-01T12:00:00Z"
    assert literal(dt.datetime(2024, 3, 1, 12, 0, 0, 5000, tzinfo=dt.UTC)) == "2024-03-01T12:00:00.005000Z"
    assert literal(dt.date(2024, 3, 1)) == "2024-03-01"
    with pytest.raises(ValueError):
        literal(dt.datetime(2024, 3, 1))  # naive: no instant
    with pytest.raises(ValueError):
        literal(float("nan"))


def test_names_and_keys_cannot_smuggle_syntax() -> None:
    """Issue 5: property names are identifiers, key values literals; nothing else reaches the URL."""
    with pytest.raises(ValueError):
        name("lastname eq 'x' or 1 eq 1")
    with pytest.raises(ValueError):
        where("lastname", "eq); drop", "x")
    assert str(where("lastname", "eq", "o'brien")) == "lastname eq 'o''brien'"
    assert str(where("fullname", "startswith", "d'")) == "startswith(fullname,'d''')"
    assert entity_path("contacts", {"emailaddress1": "o'b@x.io"}) == "contacts(emailaddress1='o''b@x.io')"
    assert entity_path("contacts", "6F9619FF-8B86-D011-B42D-00C04FC964FF") == (
        "contacts(6f9619ff-8b86-d011-b42d-00c04fc964ff)"
    )
    with pytest.raises(ValueError):
        entity_path("contacts", "1) or (1")
    assert str(one_of("statecode", [0, 1])) == (
        'Microsoft.Dynamics.CRM.In(PropertyName=\'statecode\',PropertyValues=["0","1"])'
    )
    window = modified_between(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    assert str(window) == "(modifiedon ge 2024-01-01T00:00:00Z and modifiedon lt 2024-01-02T00:00:00Z)"


def test_values_go_out_in_the_form_dataverse_demands() -> None:
    """SPEC OPS-9: Edm.DateTimeOffset in UTC, Edm.Date as a date, lookups bound, text cuts reported."""
    converted = to_web_api(
        "opportunities",
        {
            "name": "x" * 310,
            "estimatedvalue": Decimal("1250.50"),
            "closeprobability": 40,
            "estimatedclosedate": dt.datetime(2024, 6, 30, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
            "parentaccountid": Lookup("accounts", "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
            "description": None,
        },
    )
    assert converted.body == {
        "name": "x" * 300,
        "estimatedvalue": 1250.5,
        "closeprobability": 40,
        "estimatedclosedate": "2024-07-01",  # the calendar date of that instant in UTC
        "parentaccountid@odata.bind": "/accounts(6f9619ff-8b86-d011-b42d-00c04fc964ff)",
        "description": None,
    }
    assert [(t.column, t.length, t.max_length) for t in converted.truncated] == [("name", 310, 300)]
    assert value_out(dt.datetime(2024, 1, 1, 1, 0, tzinfo=CET)) == "2024-01-01T00:00:00Z"
    assert value_out(Decimal("7")) == 7
    with pytest.raises(ValueError):
        value_out(dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        value_out(object())
    assert parse_timestamp("2024-01-01T12:00:00Z") == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    assert parse_timestamp(None) is None

"""The SOQL tokenizer/parser and the id algorithm on their own (pure functions; FACTS §6, §10)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import checksum, is_valid_id, make_id, make_ids, to_18
from crm_pipelines.sandbox.salesforce.soql import DateLiteral, RelativeDate, parse, unescape_like
from crm_pipelines.sandbox.salesforce.soql_sql import compile_query


def test_checksum_matches_the_documented_example() -> None:
    """FACTS §10: 001A0000006Vm9r -> 001A0000006Vm9rIAC."""
    assert checksum("001A0000006Vm9r") == "IAC"
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC" and is_valid_id("001A0000006Vm9rIAC")
    assert not is_valid_id("001A0000006Vm9rIAD") and not is_valid_id("001A0000006Vm9")


def test_vectorised_ids_equal_the_scalar_ones() -> None:
    seqs = np.array([0, 1, 61, 62, 3843, 12_345_678, 10**9])
    assert list(make_ids("00Q", seqs)) == [make_id("00Q", int(s)) for s in seqs]


def test_string_escapes() -> None:
    """FACTS §6: backslash escapes; \\' is a quote inside the value; \\% and \\_ only matter in LIKE."""
    q = parse(r"SELECT Id FROM Lead WHERE Email = 'o\'brien\\x\n\u00e9' AND Name LIKE 'a\_b%'")
    email, name = q.where.items  # type: ignore[union-attr]
    assert unescape_like(email.value) == "o'brien\\x\né"
    assert name.value == r"a\_b%"  # kept in LIKE-pattern form for the SQL LIKE ... ESCAPE '\'


def test_literals() -> None:
    q = parse("SELECT Id FROM Lead WHERE CreatedDate >= 2024-01-01T10:00:00+02:00 AND CloseDate = 2024-02-29 "
              "AND NumberOfEmployees > -5 AND IsConverted = FALSE AND LastModifiedDate = LAST_N_DAYS:30 "
              "AND Email != NULL")
    values = [c.value for c in q.where.items]  # type: ignore[union-attr]
    assert values[0] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
    assert values[1:] == [DateLiteral("2024-02-29"), -5, False, RelativeDate("LAST_N_DAYS", 30), None]


@pytest.mark.parametrize("soql", [
    "SELECT FROM Lead", "SELECT Id Lead", "SELECT Id FROM Lead WHERE", "SELECT Id FROM Lead WHERE Email = 'x",
    "SELECT Id FROM Lead WHERE Email IN ()", "SELECT Id FROM Lead LIMIT -1", "SELECT Id FROM Lead ORDER Name",
    "SELECT Id FROM Lead WHERE (Email = 'x'", "SELECT Id FROM Lead WHERE Email = 'x' extra",
])
def test_malformed(soql: str) -> None:
    with pytest.raises(SalesforceError) as err:
        compile_query(parse(soql), include_deleted=False)
    assert err.value.code == "MALFORMED_QUERY"


def test_values_are_bound_parameters_never_sql_text() -> None:
    """Issue 3: injection impossible by construction: every literal becomes a parameter."""
    c = compile_query(parse(r"SELECT Id FROM Lead WHERE Email = 'x\' OR 1=1 --'"), include_deleted=False)
    assert "OR 1=1" not in c.source and c.params == ["x' OR 1=1 --"]

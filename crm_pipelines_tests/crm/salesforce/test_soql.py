"""Issue 5 (Salesforce): SOQL is built only through a function that escapes literals the Salesforce way
(FACTS §6) — checked on its own and proven against the sandbox's SOQL parser."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm_pipelines.crm.salesforce.soql import Like, Name, Names, literal, soql
from crm_pipelines_tests.crm.salesforce.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

TRICKY = ["O'Brien", "back\\slash", "new\nline", 'say "hi"', "100%_sure", "tab\there", "x' OR LastName != '"]


def test_literals_follow_salesforce_escaping() -> None:
    """FACTS §6: quote, backslash, newline … escaped; dates, datetimes (UTC), IN lists, null, booleans."""
    assert literal("O'Brien") == r"'O\'Brien'"
    assert literal("a\\b") == r"'a\\b'"
    assert literal('l1\nl2\r\t\b\f"') == r"'l1\nl2\r\t\b\f\"'"
    assert literal("bell\x07") == r"'bell\u0007'"
    assert literal(None) == "null" and literal(True) == "true" and literal(False) == "false"
    assert literal(12) == "12" and literal(2.5) == "2.5" and literal(Decimal("10.50")) == "10.50"
    assert literal(dt.date(2024, 2, 29)) == "2024-02-29"
    berlin = dt.timezone(dt.timedelta(hours=2))
    assert literal(dt.datetime(2024, 6, 1, 2, 30, tzinfo=berlin)) == "2024-06-01T00:30:00Z"
    assert literal(dt.datetime(2024, 6, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)) == "2024-06-01T00:00:00.123Z"
    assert literal(["a'b", 1]) == r"('a\'b', 1)"
    assert literal(Like("50%_off", "starts")) == r"'50\%\_off%'"
    with pytest.raises(ValueError):
        literal(dt.datetime(2024, 1, 1))  # naive: no instant
    with pytest.raises(ValueError):
        literal([])  # `IN ()` is not SOQL
    with pytest.raises(ValueError):
        literal(float("nan"))
    with pytest.raises(TypeError):
        literal(object())


def test_names_are_checked_and_values_never_become_syntax() -> None:
    """Issue 5: no string concatenation of values — names are checked, placeholders take literals only."""
    query = soql("SELECT {f} FROM {o} WHERE Email = {e}", f=Names(["Id", "Account.Name"]), o=Name("Contact"), e="a'b")
    assert query == r"SELECT Id, Account.Name FROM Contact WHERE Email = 'a\'b'"
    for bad in ("Lead WHERE", "Id,Name", "Name--", "", "1Field"):
        with pytest.raises(ValueError):
            Name(bad)
    with pytest.raises(ValueError):
        soql("SELECT Id FROM Lead WHERE Email = {missing}")
    with pytest.raises(ValueError):
        soql("SELECT Id FROM Lead WHERE Email = {e!r}", e="x")


def test_escaped_literals_match_exactly_what_was_stored(sf: RunningSandbox) -> None:
    """Issue 5 / FACTS §6, proven against the sandbox: each tricky value finds its own record and only it;
    an injection attempt is just a name nobody has; LIKE treats % and _ of the text literally."""
    tag = f"soql-{uuid.uuid4().hex[:8]}"

    async def run():
        async with client(sf) as sfc:
            created = await sfc.save("create", "Lead", [{"LastName": v, "Company": tag} for v in TRICKY])
            assert all(o.ok for o in created), created
            found = {}
            for value in TRICKY:
                query = soql("SELECT Id, LastName FROM Lead WHERE LastName = {v} AND Company = {tag}", v=value, tag=tag)
                found[value] = [r async for page in sfc.iter_query(query) for r in page]
            like = soql("SELECT LastName FROM Lead WHERE LastName LIKE {p} AND Company = {tag}", p=Like("%_"), tag=tag)
            liked = [r["LastName"] async for page in sfc.iter_query(like) for r in page]
            listed = soql(
                "SELECT LastName FROM Lead WHERE LastName IN {names} AND Company = {tag}", names=TRICKY[:4], tag=tag
            )
            in_list = sorted([r["LastName"] async for page in sfc.iter_query(listed) for r in page])
            return created, found, liked, in_list

    created, found, liked, in_list = asyncio.run(run())
    ids = {v: o.id for v, o in zip(TRICKY, created, strict=True)}
    for value in TRICKY:
        assert [(r["Id"], r["LastName"]) for r in found[value]] == [(ids[value], value)], value
    assert liked == ["100%_sure"]
    assert in_list == sorted(TRICKY[:4])

"""Plain pages are written by SQLite (``Renderer.json_sql``): the bytes must be what orjson writes for the rows.

The fast path renders a page without Python objects per value; these rows hold the values where SQLite's own
JSON could differ from orjson's (floats that are not whole, huge or zero, booleans, control characters), so
any drift between the two renderings shows here rather than in a client.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from crm_pipelines.sandbox.dynamics.catalog import BY_SET
from crm_pipelines.sandbox.dynamics.messages import ApiRequest
from crm_pipelines.sandbox.dynamics.odata import parse_prefer
from crm_pipelines.sandbox.dynamics.query import Reader
from crm_pipelines.sandbox.dynamics.render import Renderer
from crm_pipelines.sandbox.dynamics.store import DynamicsStore

AMOUNTS = [0.1 + 0.2, 1e16, -12.345, 1e-7, 123456789012345.67, 1e15, 999999999999999.0, 2.5e300, 0.0, -3.0,
           10070000.0, None]
NAMES = ['a"b\\c\n\t\x01\x1f\x7f é ☃ \u2028 /', "", "<b>&amp;", "𝄞 😀", "x'y", "\x00nul", None, "plain"]


def _store(tmp_path: Path) -> DynamicsStore:
    store = DynamicsStore(tmp_path / "dynamics.sqlite3")
    accounts, users = BY_SET["accounts"], BY_SET["systemusers"]
    for i, amount in enumerate(AMOUNTS):
        store.insert(accounts, {"accountid": f"00000000-0000-0000-0000-{i:012d}", "name": NAMES[i % len(NAMES)],
                                "revenue": amount, "numberofemployees": i - 3, "versionnumber": 100 + i,
                                "statecode": 0, "statuscode": 1, "modifiedon": "2026-01-02T03:04:05Z"})
    for i, disabled in enumerate([1, 0, None]):
        store.insert(users, {"systemuserid": f"00000000-0000-0000-0001-{i:012d}", "isdisabled": disabled,
                             "fullname": NAMES[i], "versionnumber": 200 + i})
    return store


def _page(store: DynamicsStore, entity_set: str, query: dict[str, str]) -> bytes:
    req = ApiRequest("GET", entity_set, query, {"prefer": "odata.maxpagesize=5000"})
    return orjson.dumps(Reader(store, "http://sandbox/api/data/v9.2").list(BY_SET[entity_set], req).body["value"])


def _rendered(store: DynamicsStore, entity_set: str, select: list[str] | None) -> bytes:
    table = BY_SET[entity_set]
    rows = [store.get(table, r[0]) for r in store.db.execute(
        f"SELECT {table.primary_id} FROM {entity_set} ORDER BY {table.primary_id}")]
    renderer = Renderer(store, table, select, parse_prefer(None))
    return orjson.dumps([renderer.row(r) for r in rows])  # attribute by attribute, the reference rendering


def test_sql_rendered_pages_are_orjson_byte_for_byte(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        for entity_set, select in [("accounts", ["name", "revenue", "numberofemployees", "name", "modifiedon"]),
                                   ("accounts", None), ("systemusers", ["isdisabled", "fullname"]),
                                   ("systemusers", None)]:
            query = {"$select": ",".join(select)} if select else {}
            assert _page(store, entity_set, query) == _rendered(store, entity_set, select), (entity_set, select)
        values = orjson.loads(_page(store, "accounts", {"$select": "revenue"}))
        assert [v["revenue"] for v in values] == [None if a is None else float(a) for a in AMOUNTS]
        users = orjson.loads(_page(store, "systemusers", {"$select": "isdisabled"}))
        assert [u["isdisabled"] for u in users] == [True, False, None]
    finally:
        store.close()

"""The mapped values the plans merge and create with, as read from ``unified``'s field tables
(``defs/writeback/field_tables.py``): on PostgreSQL spread by the server, on SQLite here, with the same values
and types either way (CONF-5: a merge compares them as read, so ``1``, ``"1"``, ``True`` and ``None`` must
arrive as they were stored), including a property only the newer documents have (a mapping added since)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipelines.defs.writeback.field_tables import read_fields
from crm_pipelines.state import unified

_NAME = "fields_salesforce_contact"


def _docs() -> list[dict]:
    old = [{"id": f"003{i:05d}", "values": {"email": f"p{i}@example.com", "firstname": "Zoë \"Z\" \\ O'Hara",
                                            "numberofemployees": i, "hs_is_vip": i % 2 == 0, "state": None,
                                            "o'k %s": "x"}}
           for i in range(150)]  # fmt: skip
    # written after a mapping was added: one more property than every document the server samples
    new = [{"id": f"003{i:05d}", "values": {"email": f"p{i}@example.com", "firstname": "Ann", "numberofemployees": 1.5,
                                            "hs_is_vip": "1", "state": "US-NY", "jobtitle": f"CTO {i}"}}
           for i in range(150, 155)]  # fmt: skip
    return old + new


@pytest.fixture
def stored(state_engine) -> list[dict]:
    docs = _docs()
    table = unified.column(_NAME, "id").table
    with state_engine.begin() as conn:
        conn.execute(table.insert(), docs)
        # a record with no document, and one whose document is JSON null: no values either way
        conn.execute(table.insert(), [{"id": "00400000", "values": sa.null()}, {"id": "00400001", "values": None}])
    return docs


def _cells(docs: list[dict], columns: list[str]) -> list[list]:
    """The frame read_fields should give, cell by cell, as (type, value): ``1 == 1.0 == True`` in a frame
    comparison, and a merge must see the difference (CONF-5)."""
    rows = [{"id": d["id"], **d["values"]} for d in docs] + [{"id": "00400000"}, {"id": "00400001"}]
    return [[(type(r.get(c)), r.get(c)) for c in columns] for r in sorted(rows, key=lambda r: r["id"])]


def test_conf5_mapped_values_are_read_with_the_types_they_were_stored_with(state_engine, stored) -> None:
    got = read_fields(state_engine, "salesforce", "Contact", None).sort_values("id", ignore_index=True)
    # every property any document has is a column, one null everywhere included (state), and a key that
    # looks like SQL; one only the newer documents have (jobtitle) is None in the older ones
    columns = ["id", "email", "firstname", "numberofemployees", "hs_is_vip", "state", "o'k %s", "jobtitle"]
    assert sorted(got.columns) == sorted(columns)
    assert [[(type(v), v) for v in row] for row in got[columns].itertuples(index=False)] == _cells(stored, columns)
    first, last = got.iloc[0], got.iloc[154]
    assert (type(first["numberofemployees"]), type(first["hs_is_vip"])) == (int, bool)
    assert (type(last["numberofemployees"]), last["hs_is_vip"], last["jobtitle"]) == (float, "1", "CTO 154")


def test_conf5_no_records_asked_for_reads_nothing(state_engine, stored) -> None:
    assert list(read_fields(state_engine, "salesforce", "Contact", []).columns) == ["id"]


def test_conf5_records_read_by_id_carry_the_same_values_as_the_whole_table(state_engine, stored) -> None:
    whole = read_fields(state_engine, "salesforce", "Contact", None).set_index("id")
    ids = ["00300003", "00300151", "00399999"]  # the last one is not stored: it is simply not returned
    some = read_fields(state_engine, "salesforce", "Contact", ids).set_index("id").sort_index()
    assert list(some.index) == ["00300003", "00300151"]
    pd.testing.assert_frame_equal(some, whole.loc[some.index, some.columns])

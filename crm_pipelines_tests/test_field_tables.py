"""The mapped values the plans merge and create with, as read from ``unified``'s field tables
(``defs/writeback/field_tables.py``): on PostgreSQL spread by the server, on SQLite here, with the same values
and types either way (CONF-5: a merge compares them as read, so ``1``, ``"1"``, ``True`` and ``None`` must
arrive as they were stored), including a property only the newer documents have (a mapping added since)."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_pipelines.defs.writeback.field_tables import read_fields
from crm_pipelines.state import unified

_NAME = "fields_salesforce_contact"


def _docs() -> list[dict]:
    old = [{"id": f"003{i:05d}", "values": {"email": f"p{i}@example.com", "firstname": "Zoë \"Z\" \\ O'Hara",
                                            "numberofemployees": i, "hs_is_vip": i % 2 == 0, "state": None}}
           for i in range(150)]  # fmt: skip
    # written after a mapping was added: one more property than every document the server samples
    new = [{"id": f"003{i:05d}", "values": {"email": f"p{i}@example.com", "firstname": "Ann", "numberofemployees": 1.5,
                                            "hs_is_vip": "1", "state": "US-NY", "jobtitle": f"CTO {i}"}}
           for i in range(150, 155)]  # fmt: skip
    return old + new


@pytest.fixture
def stored(state_engine) -> list[dict]:
    docs = _docs()
    with state_engine.begin() as conn:
        conn.execute(unified.column(_NAME, "id").table.insert(), docs)
    return docs


def test_conf5_mapped_values_are_read_with_the_types_they_were_stored_with(state_engine, stored) -> None:
    got = read_fields(state_engine, "salesforce", "Contact", None).sort_values("id", ignore_index=True)
    want = pd.DataFrame([{"id": d["id"], **d["values"]} for d in stored]).astype(object)
    want = want.where(want.notna(), None)
    assert set(got.columns) == set(want.columns)
    pd.testing.assert_frame_equal(got[want.columns].astype(object), want)
    # types as stored, not as text: an integer, a float, a boolean, a string that looks like one
    first, last = got.iloc[0], got.iloc[-1]
    assert (type(first["numberofemployees"]), type(first["hs_is_vip"])) == (int, bool)
    assert (type(last["numberofemployees"]), last["hs_is_vip"]) == (float, "1")
    assert first["state"] is None and first["jobtitle"] is None and last["jobtitle"] == "CTO 154"


def test_conf5_records_read_by_id_carry_the_same_values_as_the_whole_table(state_engine, stored) -> None:
    whole = read_fields(state_engine, "salesforce", "Contact", None).set_index("id")
    ids = ["00300003", "00300151", "00399999"]  # the last one is not stored: it is simply not returned
    some = read_fields(state_engine, "salesforce", "Contact", ids).set_index("id").sort_index()
    assert list(some.index) == ["00300003", "00300151"]
    pd.testing.assert_frame_equal(some, whole.loc[some.index, some.columns])

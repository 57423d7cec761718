"""The stored plan is rewritten by scope and only where it differs (``state/plan_store.write``; OPS-5: the plan a
user reviews is exactly what was planned, and an unchanged record's rows are never dropped and re-created)."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipelines.state import plan_store
from crm_pipelines.state.schema import plan_rows


def _rows(records: dict[str, list[str]], target: str = "salesforce", part: str = "creates") -> pd.DataFrame:
    """scope -> the ``source_id`` of each of its rows, encoded as the plan stores them."""
    frame = pd.DataFrame([{"object": "contact", "source_id": i, "scope": s} for s, ids in records.items() for i in ids])
    encoded = plan_store.encode(frame.drop(columns="scope"))
    return encoded.assign(target_crm=target, part=part, scope=frame["scope"].to_numpy())


def _stored(engine) -> dict[str, list[str]]:
    frame = plan_store.read(engine).get(("salesforce", "creates"), pd.DataFrame(columns=["scope", "source_id"]))
    return {s: sorted(g["source_id"]) for s, g in frame.groupby("scope")}


def test_ops5_a_first_write_stores_each_row_once(state_engine) -> None:
    # a row planned twice under one scope is one row; the same row under two scopes is each's
    rows = _rows({"contact:a": ["2", "1", "2"], "contact:b": ["3", "2"]})
    with state_engine.begin() as conn:
        written = plan_store.write(conn, rows, None, [("salesforce", "creates")])
    assert written.rows == 4
    assert sorted(written.changed["scope"]) == ["contact:a", "contact:b"]
    assert _stored(state_engine) == {"contact:a": ["1", "2"], "contact:b": ["2", "3"]}


def test_ops5_only_the_scopes_whose_rows_differ_are_rewritten(state_engine) -> None:
    with state_engine.begin() as conn:
        plan_store.write(conn, _rows({"contact:a": ["1", "2"], "contact:b": ["3"], "contact:c": ["4"]}), None,
                         [("salesforce", "creates")])
    # a full plan: b changed, c is gone, a is as before (in another order), d is new
    again = _rows({"contact:d": ["5"], "contact:a": ["2", "1"], "contact:b": ["3", "6"]})
    with state_engine.begin() as conn:
        written = plan_store.write(conn, again, None, [("salesforce", "creates")])
    assert sorted(written.changed["scope"]) == ["contact:b", "contact:c", "contact:d"]
    assert sorted(written.removed[("salesforce", "creates")]["source_id"]) == ["3", "4"]  # b's old row, c's
    assert written.rows == 2 + 3  # deleted b and c; inserted b (two rows) and d
    assert _stored(state_engine) == {"contact:a": ["1", "2"], "contact:b": ["3", "6"], "contact:d": ["5"]}
    # the same rows once more: nothing is written
    with state_engine.begin() as conn:
        unchanged = plan_store.write(conn, again, None, [("salesforce", "creates")])
    assert unchanged.rows == 0 and unchanged.changed.empty


def test_ops5_a_whole_plan_into_an_empty_store_is_stored_and_then_compared(state_engine) -> None:
    # a first plan fills the store without its key's index (PostgreSQL) and without reading anything back;
    # what it stores is what a compared write stores, and the next plan compares against it through the key
    with state_engine.begin() as conn, plan_store.filling(conn) as empty:
        assert empty
        written = plan_store.write(conn, _rows({"contact:a": ["2", "1", "2"], "contact:b": ["3"]}), None,
                                   [("salesforce", "creates")], empty=empty)
    assert written.rows == 3 and sorted(written.changed["scope"]) == ["contact:a", "contact:b"]
    assert _stored(state_engine) == {"contact:a": ["1", "2"], "contact:b": ["3"]}
    with state_engine.begin() as conn, plan_store.filling(conn) as empty:
        assert not empty  # a plan is stored: compared, not filled
        again = plan_store.write(conn, _rows({"contact:a": ["1", "2"], "contact:b": ["4"]}), None,
                                 [("salesforce", "creates")], empty=empty)
    assert sorted(again.changed["scope"]) == ["contact:b"]
    assert _stored(state_engine) == {"contact:a": ["1", "2"], "contact:b": ["4"]}
    _refuses_a_repeat(state_engine)  # the key is back


def test_ops5_a_failed_fill_leaves_the_store_as_it_was(state_engine) -> None:
    # the fill's key change belongs to its transaction: a plan failing midway stores nothing and keeps the key
    with (pytest.raises(RuntimeError, match="plan failed"), state_engine.begin() as conn,
          plan_store.filling(conn) as empty):
        plan_store.write(conn, _rows({"contact:a": ["1"]}), None, [("salesforce", "creates")], empty=empty)
        raise RuntimeError("plan failed")
    assert _stored(state_engine) == {}
    with state_engine.begin() as conn:
        plan_store.write(conn, _rows({"contact:a": ["1"]}), None, [("salesforce", "creates")])
    _refuses_a_repeat(state_engine)


def _refuses_a_repeat(engine) -> None:
    """The primary key holds: a row stored again under its scope is refused."""
    row = _rows({"contact:a": ["1"]}).iloc[0]
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(plan_rows.insert().values(target_crm=row["target_crm"], part=row["part"], scope=row["scope"],
                                               row_hash=int(row["row_hash"]), row=orjson.loads(row["row"])))


def test_conf1_the_conflict_sample_is_found_without_reading_every_update(state_engine) -> None:
    # CONF-1/2: each plan run samples its conflicts; on PostgreSQL they are found through their own index
    # (``migrations._v10``), whose condition ``head`` must state as the index does
    updates = pd.DataFrame([{"kind": "contact", "record_id": str(i), "field": "jobtitle", "conflict": i % 50 == 7}
                            for i in range(200)])
    encoded = plan_store.encode(updates).assign(target_crm="hubspot", part="updates",
                                                scope=[f"contact:{i}" for i in range(200)])
    with state_engine.begin() as conn:
        plan_store.write(conn, encoded, None, [("hubspot", "updates")])
    sample = plan_store.head(state_engine, "hubspot", "updates", 20, conflicts=True)
    assert sorted(sample["record_id"], key=int) == ["7", "57", "107", "157"]
    if state_engine.dialect.name == "postgresql":
        with state_engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a table this small could be read whole
            plan = conn.exec_driver_sql(
                "EXPLAIN SELECT row FROM plan_rows WHERE target_crm = 'hubspot' AND part = 'updates' AND "
                f"{plan_store.CONFLICTS} ORDER BY scope, row_hash LIMIT 20").scalars().all()
        assert any("ix_plan_rows_conflicts" in line for line in plan), plan


def test_ops5_any_text_a_person_typed_is_stored_exactly(state_engine) -> None:
    # values as people type them into a CRM: tabs, line breaks, backslashes, quotes, non-ASCII, control
    # characters (the CSV that carries the rows uses some as its delimiter and quote), an empty value; and a
    # scope holding a control character (its slice goes escaped instead)
    typed = ["tab\there", "two\nlines\r\n", "C:\\path\\", 'say "hi"', "Müller ✓", "bell\x07 unit\x1f rec\x1e", ""]
    frame = pd.DataFrame({"object": "contact", "source_id": typed})
    scopes = ["contact:a"] * (len(typed) - 1) + ["contact:odd\x1fscope"]
    rows = plan_store.encode(frame).assign(target_crm="salesforce", part="creates", scope=scopes)
    with state_engine.begin() as conn:
        plan_store.write(conn, rows, None, [("salesforce", "creates")])
    stored = plan_store.read(state_engine)[("salesforce", "creates")]
    assert sorted(zip(stored["scope"], stored["source_id"], strict=True)) == sorted(zip(scopes, typed, strict=True))

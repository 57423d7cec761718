"""The stored plan is rewritten by scope and only where it differs (``state/plan_store.write``; OPS-5: the plan a
user reviews is exactly what was planned, and an unchanged record's rows are never dropped and re-created)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.state import plan_store


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

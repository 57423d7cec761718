"""The stored plan's rows COPYed on a worker thread while the next are prepared (``state/copy_behind.py``,
issue 12's first-plan time): the rows land as written, statements in between see them, and a failed COPY
fails the transaction instead of losing rows silently (OPS-5: the plan a user reviews is the plan stored)."""

from __future__ import annotations

import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from crm_pipelines.state import plan_store
from crm_pipelines.state.copy_behind import CopyBehind, CopyFailed
from crm_pipelines.state.schema import plan_rows


def _rows(target: str, part: str, n: int, start: int = 0) -> pd.DataFrame:
    frame = pd.DataFrame({"object": ["contact"] * n, "record_id": [f"r{start + i}\twith\\tab\n" for i in range(n)]})
    return plan_store.encode(frame).assign(target_crm=target, part=part,
                                           scope=[f"contact:{start + i}" for i in range(n)])


def _stored(engine: sa.Engine) -> pd.DataFrame:
    return pd.concat([f.assign(target=t, part=p) for (t, p), f in plan_store.read(engine).items()],
                     ignore_index=True)


def test_ops5_rows_copied_behind_are_stored_exactly_and_statements_between_see_them(state_engine) -> None:
    frames = [("hubspot", "creates"), ("salesforce", "creates"), ("dynamics", "left_out")]
    with state_engine.begin() as conn:
        with CopyBehind(conn) as copies:
            for i, (target, part) in enumerate(frames):
                # 120,000 rows: more than one COPY slice, so several texts are in flight at once
                written = plan_store.write(conn, _rows(target, part, 120_000, i * 1_000_000), None,
                                           [(target, part)], copies)
                assert written.rows == 120_000
            # a statement inside the block waits for the COPYs before it: it sees every row
            inside = conn.execute(sa.select(sa.func.count()).select_from(plan_rows)).scalar_one()
        assert inside == 360_000
    stored = _stored(state_engine)
    assert len(stored) == 360_000
    # the text survives escaping (tabs, backslashes, newlines) and each row keeps its scope
    first = stored[stored["scope"] == "contact:0"].iloc[0]
    assert first["record_id"] == "r0\twith\\tab\n" and first["target"] == "hubspot"
    assert set(stored.groupby(["target", "part"]).size()) == {120_000}


def test_ops5_a_copy_that_fails_behind_fails_the_write_and_stores_nothing(state_engine) -> None:
    if state_engine.dialect.name != "postgresql":
        pytest.skip("SQLite inserts on the caller's thread: nothing is copied behind")
    bad = _rows("hubspot", "creates", 10)
    # the server rejects the document: the COPY fails on the worker
    bad = bad.assign(row=[d if i != 3 else "{not json" for i, d in enumerate(bad["row"])])
    with (pytest.raises(CopyFailed, match=r"(?s)json.*COPY plan_rows, line 4") as failed,
          state_engine.begin() as conn, CopyBehind(conn) as copies):
        plan_store.write(conn, bad, None, [("hubspot", "creates")], copies)
        conn.execute(sa.select(sa.func.count()).select_from(plan_rows))  # waits, then raises
    assert isinstance(failed.value.__cause__, psycopg2.DataError)
    with state_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(plan_rows)).scalar_one() == 0


def test_ops5_a_caller_failing_inside_the_block_stores_nothing_and_keeps_its_error(state_engine) -> None:
    class Stop(Exception):
        pass

    with pytest.raises(Stop), state_engine.begin() as conn, CopyBehind(conn) as copies:
        plan_store.write(conn, _rows("hubspot", "creates", 120_000), None, [("hubspot", "creates")], copies)
        raise Stop  # COPYs may still be queued or in flight: they are dropped, and the transaction rolls back
    with state_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(plan_rows)).scalar_one() == 0
        # the connection is usable again: nothing is left waiting on it
        assert conn.execute(sa.select(sa.literal(1))).scalar_one() == 1

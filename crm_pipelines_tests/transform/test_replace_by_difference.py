"""A full recompute's write (``state/unified.replace_by_difference``) compares with the stored rows a chunk at a
time and may take the new rows as parts (issue 11: memory): the table ends exactly as the new rows, only the
keys that differ are rewritten, on both state backends."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_pipelines.state import unified


def _identities(n: int, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame({
        "identity_id": [f"email:p{i}@example.com" for i in range(n)],
        "email": [f"p{i}@example.com{tag if i % 10 == 3 else ''}" for i in range(n)],
        "hubspot_id": [str(1000 + i) if i % 4 else None for i in range(n)],
        "salesforce_id": [f"003{i:012d}" if i % 3 else None for i in range(n)],
        "salesforce_type": ["Contact" if i % 3 else None for i in range(n)],
        "dynamics_id": [None] * n, "dynamics_type": [None] * n,
        "linked": [i % 5 == 0 for i in range(n)],
    })  # fmt: skip


@pytest.mark.parametrize("as_parts", [False, True])
def test_rows_compared_in_chunks_and_written_from_parts(state_engine, monkeypatch, as_parts: bool) -> None:
    monkeypatch.setattr(unified._stored_chunks, "__defaults__", (7,))  # many chunks of stored rows
    name = "contact_identities"
    with state_engine.begin() as conn:
        assert unified.replace_by_difference(conn, name, _identities(100)) == 100  # into an empty table
    new = _identities(98, tag=".changed")  # 10 rows change, the last two are gone
    new = pd.concat([new, _identities(101).tail(1)], ignore_index=True)  # one new
    frame = [new.iloc[i : i + 30] for i in range(0, len(new), 30)] if as_parts else new
    with state_engine.begin() as conn:
        written = unified.replace_by_difference(conn, name, frame)
    assert written == 10 * 2 + 2 + 1  # changed: deleted + inserted; gone: deleted; new: inserted
    stored = unified.read(state_engine, name)
    assert sorted(unified.fingerprint_rows(name, stored)) == sorted(unified.fingerprint_rows(name, new))
    with state_engine.begin() as conn:
        assert unified.replace_by_difference(conn, name, frame if not as_parts else iter(frame)) == 0


@pytest.mark.parametrize("as_parts", [False, True])
def test_empty_table_filled_a_slice_at_a_time(state_engine, monkeypatch, as_parts: bool) -> None:
    """The first full update into empty tables normalizes and copies ``SLICE`` rows at a time (issue 11) and
    stores exactly what one write of the whole frame stores."""
    monkeypatch.setattr(unified, "SLICE", 7)
    name = "contact_identities"
    rows = _identities(100)
    frame = [rows.iloc[i : i + 30] for i in range(0, len(rows), 30)] if as_parts else rows
    with state_engine.begin() as conn:
        assert unified.replace_by_difference(conn, name, frame) == 100
    stored = unified.read(state_engine, name)
    assert sorted(unified.fingerprint_rows(name, stored)) == sorted(unified.fingerprint_rows(name, rows))
    with state_engine.begin() as conn:
        assert unified.replace_by_difference(conn, name, rows) == 0  # no longer empty: compared, nothing differs

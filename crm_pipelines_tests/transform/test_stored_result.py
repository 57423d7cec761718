"""An incremental run over the stored result, read only where it looks (``defs/unified/stored_result.py``),
changes exactly what it changes over the whole result in memory (Invariant 6: work that follows the change,
same answer): identities (CON-2/CON-4/CON-11), companies (COM-1..3), deals and stages (DEAL-2..6),
rollups, lifecycle (CON-9/DEAL-7/COM-4), on both state backends."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.bench.transform import changed_records
from crm_pipelines.defs.unified.stored_result import StoredResult
from crm_pipelines.defs.unified.update import _table_of, result_tables
from crm_pipelines.state import unified
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.incremental import incremental_changes
from crm_pipelines.transform.pipeline import TransformSettings, run_transform


def _keys(name: str, frame: pd.DataFrame) -> set[tuple]:
    key = unified.BY_NAME[name].key
    if frame.empty:
        return set()
    cols = [frame[k].astype(object).where(frame[k].notna(), None).map(lambda v: None if v is None else str(v))
            for k in key]
    return set(zip(*cols, strict=True))


def _rows(name: str, frame: pd.DataFrame) -> list[int]:
    if name.startswith("fields_"):
        frame = unified.field_rows(frame)
    return sorted(unified.fingerprint_rows(name, frame)) if len(frame) else []


def test_changes_over_the_stored_result_equal_those_over_the_whole_result(universe_frames, state_engine):
    settings = TransformSettings()
    ids = run_transform(universe_frames).contacts.identities.dropna(subset=["hubspot_id", "salesforce_id"])
    links = ids.head(300)[["hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type"]]
    links = links.assign(kind="contact")
    before = run_transform(universe_frames, links, settings)
    tables = result_tables(before)
    with state_engine.begin() as conn:
        for name, frame in tables.items():
            unified.replace_by_difference(conn, name, frame)
    stored_rows = sum(len(f) for f in tables.values())

    # edits of emails (new matches and splits), deal amounts, deletions, a new duplicate of an existing email
    delta = changed_records(universe_frames, 400, seed=5)
    sf = universe_frames.frames[("salesforce", "Contact")]
    gone = sf.iloc[[7, 70]].assign(deleted=True, modified_at=pd.Timestamp("2026-07-02", tz="UTC"))
    twin = sf[sf["Email"].notna()].iloc[[12]].assign(id="003NEWTWIN00000BBB",
                                                     modified_at=pd.Timestamp("2026-07-03", tz="UTC"))
    frames = dict(delta.frames)
    frames[("salesforce", "Contact")] = pd.concat([frames[("salesforce", "Contact")], gone, twin], ignore_index=True)
    delta = Mirrors(frames)

    expected = incremental_changes(before, delta, links, settings)
    stored = StoredResult(state_engine)
    got = stored.changes(delta, links, settings)

    assert set(got) == set(expected)
    for name, want in expected.items():
        table = _table_of(name)
        have = got[name]
        assert _keys(table, have.removed) == _keys(table, want.removed), name
        assert _rows(table, have.added) == _rows(table, want.added), name
    assert stored.reads.rounds <= 10

    # a few edits read what they reach, not the tables (400 edits reach much of this small universe)
    few = StoredResult(state_engine)
    few.changes(changed_records(universe_frames, 20, seed=6), links, settings)
    assert 0 < few.reads.rows < stored_rows / 5, (few.reads.rows, stored_rows)

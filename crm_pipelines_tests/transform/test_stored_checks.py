"""The ``unified`` asset checks counted by the state database (``defs/unified/stored_checks.py``) report what
the same checks over the result's frames report (``transform/checks.py``): duplicate emails (CON-11), contacts
without a valid email (CON-3), unmapped stages (DEAL-2), failed normalization (CON-10), on both backends."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.defs.unified.stored_checks import stored_checks
from crm_pipelines.defs.unified.update import result_tables
from crm_pipelines.state import unified
from crm_pipelines.transform import checks
from crm_pipelines.transform.pipeline import run_transform


def test_stored_checks_equal_the_checks_over_the_result(universe_frames, state_engine):
    result = run_transform(universe_frames)
    tables = result_tables(result)
    with state_engine.begin() as conn:
        for name, frame in tables.items():
            unified.replace_by_difference(conn, name, frame)

    stored = stored_checks(state_engine)
    expected = {
        "duplicate_emails": checks.duplicate_emails(result.contacts.findings),
        "contacts_without_valid_email": checks.contacts_without_valid_email(result.contacts.members),
        "unmapped_stages": checks.unmapped_stages(result.deal_stages),
        "failed_normalization": checks.failed_normalization(result.field_findings),
    }
    for name, want in expected.items():
        got = stored[name]
        assert want.count > 0, f"{name}: the universe should give the check something to find"
        assert (got.count, got.by, got.passed) == (want.count, want.by, want.passed), name
        assert len(got.sample) == len(want.sample) > 0, name
    # the samples a user reads first: the same duplicates and the same stages, in the same order
    for name in ("duplicate_emails", "unmapped_stages"):
        assert stored[name].sample == expected[name].sample, name


def test_every_declared_table_reads_back_the_same_on_either_read_path(universe_frames, state_engine):
    """PostgreSQL's rows are typed straight from its CSV (``_typed_from_copy``); they must equal the general
    path's frames for every declared table, or an incremental run would see other values than a full one."""
    tables = result_tables(run_transform(universe_frames))
    with state_engine.begin() as conn:
        for name, frame in tables.items():
            unified.replace_by_difference(conn, name, frame)
    if state_engine.dialect.name != "postgresql":
        return  # SQLite has only the general path
    with state_engine.connect() as conn:
        for declared in unified.TABLES:
            raw = unified._select(conn, declared)
            pd.testing.assert_frame_equal(unified._typed_from_copy(declared, raw),
                                          unified._typed(declared, unified.normalize(declared, raw)))

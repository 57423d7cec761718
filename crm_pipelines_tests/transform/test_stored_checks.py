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


def test_con_3_check_reads_the_same_after_the_upgrade_to_its_covering_index(universe_frames, state_url):
    """CON-3: a state database from before migration 12 keeps reporting the same contacts without a valid email
    once upgraded, and the queries the check sends then plan on the partial index that holds the rows it counts,
    not the table (issue 11: 0.27 s a sync run at a million people by the table)."""
    import sqlalchemy as sa

    from crm_pipelines.defs.unified.stored_checks import contacts_without_valid_email
    from crm_pipelines.state.db import engine_for_url
    from crm_pipelines.state.migrations import STEPS, migrate

    index = "ix_unified_contact_members_invalid_email_rows"
    engine = engine_for_url(state_url)
    assert migrate(engine, to_version=11) == 11
    result = run_transform(universe_frames)
    with engine.begin() as conn:
        unified.replace_by_difference(conn, "contact_members", result.contacts.members)
    before = stored_checks(engine)["contacts_without_valid_email"]
    assert before.count > 0
    assert migrate(engine) == STEPS[-1][0]
    after = stored_checks(engine)["contacts_without_valid_email"]
    assert (after.count, after.by, after.sample) == (before.count, before.by, before.sample)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("unified_contact_members")}
    assert index in indexes and "ix_unified_contact_members_invalid_email" not in indexes  # version 7's is gone

    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # the check's queries (not SQLite's BEGIN)
            sent.append((statement, parameters))

    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", capture)
        contacts_without_valid_email(conn)
        sa.event.remove(conn, "before_cursor_execute", capture)
        if pg:  # a test's table is small enough to scan: ask which index the planner would take
            conn.exec_driver_sql("SET enable_seqscan = off")
        assert len(sent) == 2  # the counts and the sample
        for statement, params in sent:
            plan = conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement, params).all()
            assert index in " ".join(str(v) for row in plan for v in row), (statement, plan)
    engine.dispose()

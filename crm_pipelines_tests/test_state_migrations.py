"""The state database's schema migrations (issue 6): every process that opens the state database migrates
it, so processes that start together (the bulk import's runs of OPS-1, one per CRM, and a sensor) must all
get a working schema, on both backends."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import sqlalchemy as sa

from crm_pipelines.state.db import create_state_engine
from crm_pipelines.state.migrations import STEPS
from crm_pipelines.state.schema import schema_version

PROCESSES = 8


def _open_at(url: str, start_at: float) -> str:
    time.sleep(max(start_at - time.time(), 0))  # all open the database in the same instant
    try:
        create_state_engine(url).dispose()
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"
    return "ok"


def test_processes_starting_together_all_migrate_a_fresh_database(state_url: str) -> None:
    start_at = time.time() + 4  # after every spawned process has imported the project
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_open_at, [state_url] * PROCESSES, [start_at] * PROCESSES))
    assert outcomes == ["ok"] * PROCESSES
    engine = create_state_engine(state_url)
    with engine.connect() as conn:  # each step applied exactly once
        versions = [r[0] for r in conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version))]
    engine.dispose()
    assert versions == [version for version, _ in STEPS]

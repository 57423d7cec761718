"""Connectors against real sandboxes over loopback HTTP; the budget ledger on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

# Large enough that one search window holds more than HubSpot's 10,000-result cap.
HUBSPOT_SCALE = 16_000


@pytest.fixture(scope="session")
def hubspot_big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("hubspot-big"), scale=HUBSPOT_SCALE, seed=11)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def hubspot_live(hubspot_big: RunningSandbox) -> Iterator[RunningSandbox]:
    """The big sandbox with no faults and its published rate limits, before and after each test."""
    with hubspot_big.admin() as admin:
        admin.delete("/faults").raise_for_status()
    yield hubspot_big
    with hubspot_big.admin() as admin:
        admin.delete("/faults").raise_for_status()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database on each backend (PostgreSQL: its own database in the test server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    import uuid

    import sqlalchemy as sa

    base = request.getfixturevalue("pg_url")
    name = f"state_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def state_engine(state_url: str):
    engine = create_state_engine(state_url)
    yield engine
    engine.dispose()

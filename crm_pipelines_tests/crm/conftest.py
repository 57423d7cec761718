"""Connectors against real sandboxes over loopback HTTP; the budget ledger on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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

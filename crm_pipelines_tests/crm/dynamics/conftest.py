"""The Dynamics connector against the Dynamics sandbox over HTTPS (``--tls``, its own local CA), limits on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_pipelines.crm.dynamics.auth import ClientCredentials
from crm_pipelines.crm.dynamics.client import DynamicsClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

# Enough contacts for several 5,000-row pages, small enough to seed in a few seconds.
DYNAMICS_SCALE = 20_000


@pytest.fixture(scope="session")
def dynamics_big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        tmp_path_factory.mktemp("dynamics-connector"), "--tls", scale=DYNAMICS_SCALE, seed=5, crm="dynamics"
    )
    yield sandbox
    sandbox.stop()


@pytest.fixture
def dynamics_live(dynamics_big: RunningSandbox) -> Iterator[RunningSandbox]:
    """The sandbox with no faults and its published limits, before and after each test."""
    with dynamics_big.admin() as admin:
        admin.delete("/faults").raise_for_status()
    yield dynamics_big
    with dynamics_big.admin() as admin:
        admin.delete("/faults").raise_for_status()


def credentials(sandbox: RunningSandbox, **overrides: object) -> ClientCredentials:
    creds = sandbox.credentials
    options: dict = {
        "tenant_id": creds["tenant_id"],
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "org_url": creds["org_url"],
        "authority_url": sandbox.base_url,  # the sandbox is its own Entra ID authority
        **overrides,
    }
    return ClientCredentials("dynamics", **options)


def client(
    sandbox: RunningSandbox, meter: Meter | None = None, auth: ClientCredentials | None = None, **options: object
) -> DynamicsClient:
    return DynamicsClient(
        "dynamics",
        sandbox.credentials["org_url"],
        auth or credentials(sandbox),
        meter=meter,
        ca_bundle=sandbox.ca_bundle,
        **options,
    )

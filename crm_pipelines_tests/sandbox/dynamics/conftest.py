"""The Dynamics sandbox started once per session over HTTPS (``--tls``, its own local CA), as a user would."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from azure.core.credentials import AccessToken
from PowerPlatform.Dataverse.client import DataverseClient

from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox


class SandboxCredential:
    """An azure-core TokenCredential that asks the sandbox's Entra-style token endpoint (client credentials)."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.sandbox = sandbox
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls += 1
        creds = self.sandbox.credentials
        r = httpx.post(creds["token_url"], verify=self.sandbox.verify, data={
            "grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"], "scope": scopes[0],
        })
        r.raise_for_status()
        body = r.json()
        return AccessToken(body["access_token"], int(time.time()) + body["expires_in"])


def fresh_token(sandbox: RunningSandbox) -> str:
    return SandboxCredential(sandbox).get_token(sandbox.credentials["scope"]).token


def api(sandbox: RunningSandbox, token: str | None = None, **headers: str) -> httpx.Client:
    """httpx on the Web API root, trusting the sandbox's CA, with a token from the token endpoint."""
    return httpx.Client(
        base_url=sandbox.credentials["api_url"] + "/",
        headers={"Authorization": f"Bearer {token or fresh_token(sandbox)}", "Accept": "application/json",
                 "OData-MaxVersion": "4.0", "OData-Version": "4.0", **headers},
        verify=sandbox.verify, timeout=60,
    )


def set_faults(sandbox: RunningSandbox, **config: object) -> None:
    with sandbox.admin() as admin:
        admin.put("/faults", json=config).raise_for_status()


@pytest.fixture(scope="session")
def dynamics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("dynamics-sandbox"), "--tls", crm="dynamics")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def dynamics(dynamics_server: RunningSandbox) -> Iterator[RunningSandbox]:
    """The shared sandbox with no faults and the published limits, before and after each test."""
    with dynamics_server.admin() as admin:
        admin.delete("/faults").raise_for_status()
    yield dynamics_server
    with dynamics_server.admin() as admin:
        admin.delete("/faults").raise_for_status()


@pytest.fixture
def pristine_dynamics(dynamics: RunningSandbox) -> RunningSandbox:
    """The shared sandbox regenerated from its seed: counts equal the generator's manifest."""
    with dynamics.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
    return dynamics


@pytest.fixture
def sdk(dynamics: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[DataverseClient]:
    """Microsoft's client on the sandbox: requests trusts the sandbox CA through REQUESTS_CA_BUNDLE."""
    assert dynamics.ca_bundle and dynamics.base_url.startswith("https://")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", dynamics.ca_bundle)
    with DataverseClient(dynamics.base_url, SandboxCredential(dynamics)) as client:
        yield client

"""The Salesforce sandbox started once per session over HTTPS (``--tls``), with the clients the tests use.

Issue 3 (the Salesforce sandbox) and ``shared/specs/salesforce/FACTS.md`` (cited as FACTS §n) are what the
tests check; each test names the point it covers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

VERSION = "59.0"  # simple-salesforce 1.12's default API version (FACTS §1)
SCALE = 1_000  # enough Contacts (~400) for several 200-record query batches


class LoginHostsToSandbox(HTTPAdapter):
    """Sends ``https://<anything>.salesforce.com`` to the sandbox, as a hosts-file entry would.

    simple-salesforce builds its token URL from ``domain`` (``login``, ``test`` or a My Domain) and always on
    ``salesforce.com`` (FACTS §1); this is how a test reaches the sandbox through the SDK's own login code.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.hosts_seen: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs):  # type: ignore[override]
        parts = urlsplit(request.url or "")
        if (parts.hostname or "").endswith(".salesforce.com"):
            self.hosts_seen.append(parts.hostname or "")
            request.url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().send(request, **kwargs)


def sf_session(sandbox: RunningSandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    session.verify = sandbox.ca_bundle
    return session


def sdk(sandbox: RunningSandbox, token: str | None = None) -> Salesforce:
    """simple-salesforce in its direct mode: instance URL + session id (FACTS §1)."""
    return Salesforce(instance_url=sandbox.base_url, session_id=token or sandbox.credentials["access_token"],
                      session=sf_session(sandbox), version=VERSION)


def rest(sandbox: RunningSandbox, token: str | None = None) -> httpx.Client:
    """A raw client on ``/services/data/vXX.X``, for what the wire looks like."""
    return httpx.Client(
        base_url=f"{sandbox.base_url}/services/data/v{VERSION}",
        headers={"Authorization": f"Bearer {token or sandbox.credentials['access_token']}"},
        verify=sandbox.verify, timeout=60,
    )


def set_faults(sandbox: RunningSandbox, **config: object) -> None:
    with sandbox.admin() as admin:
        admin.put("/faults", json=config).raise_for_status()


@pytest.fixture(scope="session")
def salesforce_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(Path(tmp_path_factory.mktemp("salesforce-sandbox")), "--tls", crm="salesforce",
                            scale=SCALE)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def salesforce(salesforce_server: RunningSandbox) -> Iterator[RunningSandbox]:
    """The shared sandbox with no faults and the published limits, before and after each test."""
    set_faults(salesforce_server)
    yield salesforce_server
    set_faults(salesforce_server)


@pytest.fixture
def pristine_salesforce(salesforce: RunningSandbox) -> RunningSandbox:
    """The shared sandbox regenerated from its seed: counts equal the generator's manifest."""
    with salesforce.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
    return salesforce

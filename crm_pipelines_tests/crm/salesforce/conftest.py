"""The Salesforce connector against the Salesforce sandbox over HTTPS (``--tls``), its published limits on.

Issue 5 (the Salesforce bullet of the connectors issue) and SPEC rules are what the tests check; each test
names the point it covers. Every client logs in through OAuth (client credentials unless a test is about
another flow), because one test lets every session expire and the announced session id with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.auth import ClientCredentials
from crm_pipelines.crm.salesforce.client import SalesforceClient
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

SCALE = 6_000  # ~2,400 Contacts: more than one 2,000-record query batch


@pytest.fixture(scope="session")
def sf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        Path(tmp_path_factory.mktemp("sf-connector")), "--tls", crm="salesforce", scale=SCALE, seed=21
    )
    yield sandbox
    sandbox.stop()


def set_faults(sandbox: RunningSandbox, **config: object) -> None:
    with sandbox.admin() as admin:
        admin.put("/faults", json=config).raise_for_status()


@pytest.fixture
def sf(sf_server: RunningSandbox) -> Iterator[RunningSandbox]:
    """The shared sandbox with no faults and the published limits, before and after each test."""
    set_faults(sf_server)
    yield sf_server
    set_faults(sf_server)


def client(sandbox: RunningSandbox, meter: Meter | None = None, auth: Any = None, **options: Any) -> SalesforceClient:
    creds = sandbox.credentials
    auth = auth or ClientCredentials(
        "salesforce", creds["consumer_key"], creds["consumer_secret"], login_url=sandbox.base_url
    )
    return SalesforceClient(
        "salesforce", auth, api_version=creds["api_version"], meter=meter, ca_bundle=sandbox.ca_bundle, **options
    )


def stats(sandbox: RunningSandbox) -> dict[str, dict[str, int]]:
    with sandbox.admin() as admin:
        return admin.get("/stats").json()


def direct_query(sandbox: RunningSandbox, query: str, resource: str = "query") -> list[dict]:
    """A SOQL read straight over HTTP with its own login, past the connector (what a test compares with)."""
    creds = sandbox.credentials
    with httpx.Client(base_url=sandbox.base_url, verify=sandbox.verify, timeout=60) as http:
        token = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["consumer_key"],
                "client_secret": creds["consumer_secret"],
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        page = http.get(f"/services/data/v{creds['api_version']}/{resource}", params={"q": query}).json()
        records = list(page["records"])
        while not page["done"]:
            page = http.get(page["nextRecordsUrl"]).json()
            records += page["records"]
    return records


class LoginHostsToSandbox(httpx.AsyncBaseTransport):
    """Sends ``https://login.salesforce.com`` / ``https://test.salesforce.com`` to the sandbox, as a hosts
    entry would, and remembers which login host each token request was meant for."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.base = httpx.URL(sandbox.base_url)
        self.inner = httpx.AsyncHTTPTransport(verify=sandbox.verify)
        self.hosts_seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts_seen.append(request.url.host)
        url = self.base.copy_with(path=request.url.path, query=request.url.query or None)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "host"]
        forwarded = httpx.Request(request.method, url, headers=headers, content=await request.aread())
        return await self.inner.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self.inner.aclose()

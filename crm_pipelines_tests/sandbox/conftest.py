"""Sandboxes started for real: ``crm-pipelines sandbox serve`` in its own process, driven over loopback."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hubspot import HubSpot

SEED, SCALE = 7, 300


@dataclass
class RunningSandbox:
    proc: subprocess.Popen
    info: dict
    data_dir: Path
    crm: str = "hubspot"

    @property
    def base_url(self) -> str:
        return self.info[self.crm]["base_url"]

    @property
    def credentials(self) -> dict:
        return self.info[self.crm]["credentials"]

    @property
    def hubspot_url(self) -> str:
        return self.info["hubspot"]["base_url"]

    @property
    def token(self) -> str:
        return self.info["hubspot"]["credentials"]["access_token"]

    @property
    def ca_bundle(self) -> str | None:
        return self.info["ca_bundle"]

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/__sandbox__", verify=self.verify, timeout=60)

    def api(self, **kw) -> httpx.Client:
        return httpx.Client(
            base_url=self.hubspot_url, headers={"Authorization": f"Bearer {self.token}"},
            verify=self.verify, timeout=kw.pop("timeout", 30), **kw,
        )

    def sdk(self) -> HubSpot:
        # Client-side validation on: every response is checked against the SDK's generated models.
        return HubSpot(
            access_token=self.token, host=self.hubspot_url, client_side_validation=True, ssl_ca_cert=self.ca_bundle
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_sandbox(
    data_dir: Path, *extra: str, seed: int = SEED, scale: int = SCALE, crm: str = "hubspot"
) -> RunningSandbox:
    """``crm-pipelines sandbox serve --only <crm>`` on a free port, as its own process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "sandbox.log"  # the server's own log, shown when it fails to start
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_pipelines.cli", "sandbox", "serve", "--only", crm, f"--{crm}-port", "0",
         "--data-dir", str(data_dir), "--seed", str(seed), "--scale", str(scale), "--json",
         # Bulk jobs complete at once in tests (the suite's time); tests of job progression set it per test.
         "--salesforce-bulk-seconds", "0", *extra],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(f"sandbox exited with {proc.returncode} before announcing itself:\n{log.read_text()}")
    return RunningSandbox(proc, json.loads(line), data_dir, crm)


@pytest.fixture(scope="session")
def hubspot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("hubspot-sandbox"))
    yield sandbox
    sandbox.stop()


@pytest.fixture
def hubspot(hubspot_server: RunningSandbox) -> Iterator[RunningSandbox]:
    """The shared sandbox with no faults and the published rate limits, before and after each test."""
    with hubspot_server.admin() as admin:
        admin.delete("/faults").raise_for_status()
    yield hubspot_server
    with hubspot_server.admin() as admin:
        admin.delete("/faults").raise_for_status()


@pytest.fixture
def pristine_hubspot(hubspot: RunningSandbox) -> RunningSandbox:
    """The shared sandbox regenerated from its seed: counts equal the generator's manifest."""
    with hubspot.admin() as admin:
        admin.post("/reset", json={}).raise_for_status()
    return hubspot

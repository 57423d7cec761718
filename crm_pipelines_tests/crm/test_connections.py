"""Opening connections (TOP-2, OPS-3; issue 11): the stated target, missing secrets, dead hosts, and
cursors that never embed where a connection lives."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from crm_pipelines.crm.connections import ConnectionUnavailable, Secrets, open_client, target_of, writes_on
from crm_pipelines.extract.dynamics import CursorDeltaLinks
from crm_pipelines.settings.model import Settings


def _settings(tmp_path: Path, **connections: dict) -> Settings:
    return Settings.model_validate({"sandbox": {"data_dir": str(tmp_path)}, "connections": connections})


@pytest.mark.parametrize(
    ("crm", "variable"),
    [("hubspot", "HUBSPOT_ACCESS_TOKEN"), ("salesforce", "SALESFORCE_CLIENT_ID"), ("dynamics", "DYNAMICS_TENANT_ID")],
)
def test_target_api_with_a_missing_secret_names_the_variable(tmp_path: Path, crm: str, variable: str) -> None:
    """TOP-2: a deployment that states ``target: api`` never falls back to a sandbox left running on the
    machine; it fails naming the variable that is not set."""
    (tmp_path / "endpoints.json").write_text(json.dumps({crm: {"base_url": "http://127.0.0.1:1", "credentials": {}}}))
    settings = _settings(tmp_path, **{crm: {"target": "api"}})
    with pytest.raises(ConnectionUnavailable, match=variable):
        open_client(crm, settings, Secrets({}))


def test_unset_target_is_the_api_as_soon_as_a_secret_is_set(tmp_path: Path) -> None:
    """TOP-2: with no target stated, the sandbox only when the connection has no credential at all."""
    settings = _settings(tmp_path)
    assert target_of(settings, "hubspot", Secrets({})) == "sandbox"
    assert target_of(settings, "hubspot", Secrets({"HUBSPOT_CLIENT_ID": "x"})) == "api"
    # a partial OAuth set is an error naming what is missing, not a silent sandbox
    with pytest.raises(ConnectionUnavailable, match="HUBSPOT_CLIENT_SECRET"):
        open_client("hubspot", settings, Secrets({"HUBSPOT_REFRESH_TOKEN": "r", "HUBSPOT_CLIENT_ID": "x"}))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("crm", ["hubspot", "salesforce", "dynamics"])
def test_a_sandbox_nobody_answers_fails_in_seconds_naming_host_port_and_how_to_start_it(
    tmp_path: Path, crm: str
) -> None:
    """Issue 11: an ``endpoints.json`` left by a sandbox that has stopped (after ``make demo``, say) gives a
    clear error at once, not minutes of retries against a dead port."""
    port = _dead_port()
    credentials = {"access_token": "t", "consumer_key": "k", "consumer_secret": "s", "api_version": "62.0",
                   "tenant_id": "t", "client_id": "c", "client_secret": "s"}
    (tmp_path / "endpoints.json").write_text(
        json.dumps({crm: {"base_url": f"http://127.0.0.1:{port}", "credentials": credentials}})
    )
    started = time.monotonic()
    with pytest.raises(ConnectionUnavailable) as error:
        open_client(crm, _settings(tmp_path), Secrets({}))
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(error.value) and "crm-pipelines sandbox serve" in str(error.value)


def test_delta_links_are_stored_relative_to_the_connection(state_engine) -> None:
    """Issue 11: a Dataverse delta link is kept without host and port, so the feed continues when the
    sandbox (or the org) answers elsewhere; links stored absolute by an older version read back relative."""
    links = CursorDeltaLinks(state_engine)
    links.set("contacts", "changes", "http://127.0.0.1:40123/api/data/v9.2/contacts?$deltatoken=919%2105")
    assert links.get("contacts", "changes") == "contacts?$deltatoken=919%2105"
    from crm_pipelines.state.cursors import set_cursor

    set_cursor(state_engine, "dynamics", "leads", "delta_link:changes",
               "https://org.crm.dynamics.com/api/data/v9.2/leads?$select=leadid&$deltatoken=1")
    assert links.get("leads", "changes") == "leads?$select=leadid&$deltatoken=1"


def test_ops10_writes_are_on_for_the_sandbox_and_off_for_a_real_crm_until_turned_on(tmp_path: Path) -> None:
    """OPS-10: a new deployment against a real CRM only plans; the sandboxes write back by default."""
    secrets = Secrets({"SALESFORCE_CLIENT_ID": "x"})
    assert writes_on(_settings(tmp_path), "salesforce", Secrets({}))  # the sandbox
    assert not writes_on(_settings(tmp_path), "salesforce", secrets)  # the real API
    for spelled in ("on", True, "true"):
        assert writes_on(_settings(tmp_path, salesforce={"writes": spelled}), "salesforce", secrets)
    assert not writes_on(_settings(tmp_path, hubspot={"writes": "off"}), "hubspot", Secrets({}))


@pytest.mark.parametrize(
    ("tier", "limit_increase", "ten_secondly"),
    [("starter", False, 100), ("professional", False, 190), ("enterprise", True, 250)],
)
def test_hubspot_rate_buckets_follow_the_portal_tier_and_api_add_on(
    tmp_path: Path, tier: str, limit_increase: bool, ten_secondly: int
) -> None:
    """Issue 17 (FACTS §4): the connection paces its 10-second bucket (and the bulk import's list walker) by
    the portal's tier, 250 calls with the API Limit Increase add-on; search keeps its own 5 per second."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        hubspot = {"target": "api", "base_url": f"http://127.0.0.1:{port}", "tier": tier,
                   "api_limit_increase": limit_increase}  # fmt: skip
        client = open_client("hubspot", _settings(tmp_path, hubspot=hubspot), Secrets({"HUBSPOT_ACCESS_TOKEN": "t"}))
    buckets = client.api.limiter.limits.buckets
    asyncio.run(client.api.aclose())
    assert [(w.calls, w.period_s) for w in buckets["default"]] == [(ten_secondly, 10.0)]
    assert [(w.calls, w.period_s) for w in buckets["search"]] == [(5, 1.0)]

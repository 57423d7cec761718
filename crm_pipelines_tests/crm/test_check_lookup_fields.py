"""Issue 13, OPS-3: `crm-pipelines check` verifies, once a connection's credentials are accepted, that its CRM has
each lookup field the writes find their creates again by after a crash (HubSpot's crm_pipelines_key property,
Salesforce's External_Id__c external-id field, Dynamics' crm_pipelines_key column), one metadata call per
object, and names a missing one with how to make it, in a verdict of its own, never the credentials'."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from crm_pipelines import catalog
from crm_pipelines.crm import check as credentials
from crm_pipelines.crm.check import LookupFieldCheck, check_lookup_fields
from crm_pipelines.crm.connections import Secrets, dynamics_client, hubspot_client, salesforce_client
from crm_pipelines.crm.metering import Meter
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.model import Settings
from crm_pipelines_tests.crm.faulty_logins import set_faults
from crm_pipelines_tests.crm.test_check_verdicts import token_attempts as recorded_meters
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

NO_SECRETS = Secrets({})  # every connection's target: its sandbox


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        tmp_path_factory.mktemp("check-lookup") / "sandbox", "--only", "salesforce", "--salesforce-port", "0",
        "--only", "dynamics", "--dynamics-port", "0", scale=200, seed=11,
    )  # fmt: skip
    yield sandbox
    sandbox.stop()


def settings_for(sandbox: RunningSandbox, path: Path, **connections: object) -> Path:
    path.write_text(yaml.safe_dump({"sandbox": {"data_dir": str(sandbox.data_dir)}, "connections": connections}))
    return path


@pytest.fixture
def settings(three: RunningSandbox, tmp_path: Path) -> Iterator[Settings]:
    set_faults(three)
    yield load_settings(settings_for(three, tmp_path / "settings.yaml"))
    set_faults(three)


METADATA = ("GET /crm/v3/properties/{type}/{name}", "GET /services/data/vXX.X/sobjects/{type}/describe",
            "GET /EntityDefinitions({table})/Attributes({column})")


def test_check_finds_every_lookup_field_in_the_sandboxes_with_one_call_per_object(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, OPS-3: the three sandboxes have every lookup field an admin makes for crm_pipelines: each is
    reported present, after one metadata call per object; the standard ones (email, accountnumber) cost none."""
    meters = recorded_meters(monkeypatch)
    results = asyncio.run(credentials.check_connections(settings, NO_SECRETS))
    assert [(r.connection, r.valid, r.ready) for r in results] == [
        ("hubspot", True, True), ("salesforce", True, True), ("dynamics", True, True)]
    found = {(f.connection, f.object, f.field, f.verdict) for r in results for f in r.lookup_fields}
    assert found == {
        ("hubspot", "companies", "crm_pipelines_key", "present"), ("hubspot", "deals", "crm_pipelines_key", "present"),
        ("hubspot", "tasks", "crm_pipelines_key", "present"),
        ("salesforce", "Account", "External_Id__c", "present"),
        ("salesforce", "Opportunity", "External_Id__c", "present"), ("salesforce", "Task", "External_Id__c", "present"),
        ("dynamics", "opportunities", "crm_pipelines_key", "present"),
    }
    metadata_calls = [c for m in meters for c in m.calls if c.endpoint in METADATA]
    assert len(metadata_calls) == len(found) and {c.status for c in metadata_calls} == {200}


def test_check_names_a_field_the_org_lacks_and_one_that_is_not_an_external_id(settings: Settings) -> None:
    """Issue 13, OPS-3: Salesforce through the sandbox's real describe: a lookup field the org does not have is
    missing (with Setup's steps: Text 255, Unique, External ID, field-level security), one that exists without
    External ID is unusable; both from Account's one describe. The sandbox has External_Id__c, so the catalog
    entry is pointed at fields it lacks or has unmarked, not at a mock."""
    account = catalog.get("salesforce", "Account")

    async def run() -> tuple[tuple[LookupFieldCheck, ...], Meter]:
        meter = Meter()
        async with salesforce_client(settings, NO_SECRETS, meter=meter) as client:
            objects = [replace(account, lookup_field="Crm_Key__c"), replace(account, lookup_field="Name")]
            return await check_lookup_fields("salesforce", client, objects), meter

    (missing, unmarked), meter = asyncio.run(run())
    assert (missing.verdict, unmarked.verdict) == ("missing", "unusable")
    assert "the Account describe has no field Crm_Key__c" in missing.reason
    assert "Object Manager > Account > Fields & Relationships > New: data type Text, length 255" in (
        missing.how_to_create)
    assert "tick 'Unique' and 'External ID'" in missing.how_to_create and "field-level security" in (
        missing.how_to_create)
    assert unmarked.reason.startswith("Account.Name exists but is not marked External ID")
    assert meter.count(endpoint=METADATA[1]) == 1


def test_check_names_a_column_the_dynamics_table_lacks_and_one_of_another_type(settings: Settings) -> None:
    """Issue 13, OPS-3: Dynamics through the sandbox's real EntityDefinitions: a column the opportunity table
    does not have is missing (404), with Power Apps' steps and the Web API call; a Money column is unusable."""
    opportunities = catalog.get("dynamics", "opportunities")

    async def run() -> tuple[LookupFieldCheck, ...]:
        async with dynamics_client(settings, NO_SECRETS) as client:
            objects = [replace(opportunities, lookup_field="crm_other_key"),
                       replace(opportunities, lookup_field="estimatedvalue")]
            return await check_lookup_fields("dynamics", client, objects)

    missing, money = asyncio.run(run())
    assert (missing.verdict, money.verdict) == ("missing", "unusable")
    assert "the opportunities table has no column crm_other_key" in missing.reason
    assert "Tables > Opportunity > Columns > New column" in missing.how_to_create
    assert "'Single line of text'" in missing.how_to_create and "publisher's prefix is 'crm'" in missing.how_to_create
    assert "POST /api/data/v9.2/EntityDefinitions(LogicalName='opportunity')/Attributes" in missing.how_to_create
    assert "is of type Money" in money.reason


def test_a_lookup_field_the_api_does_not_answer_for_is_unverified_not_refused_credentials(
    three: RunningSandbox, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, OPS-3: HubSpot's properties API keeps answering 503: the credentials are still reported
    accepted, each key property is unverified (the API's answer quoted), and the connection is not ready."""
    monkeypatch.setattr(credentials, "CHECK_RETRY_BUDGET_S", 1.0)
    set_faults(three, rate_503=1.0, path_prefix="/crm/v3/properties")
    hubspot = next(r for r in asyncio.run(credentials.check_connections(settings, NO_SECRETS))
                   if r.connection == "hubspot")
    assert (hubspot.valid, hubspot.verdict, hubspot.ready) == (True, "accepted", False)
    assert {f.verdict for f in hubspot.lookup_fields} == {"unverified"}
    assert all("not verified" in f.reason and "503" in f.reason for f in hubspot.lookup_fields)


def test_check_on_a_number_property_says_the_key_is_text(three: RunningSandbox, settings: Settings) -> None:
    """Issue 13, OPS-3: a HubSpot lookup property that exists as a number is unusable, not present."""
    companies = catalog.get("hubspot", "companies")

    async def run() -> tuple[LookupFieldCheck, ...]:
        async with hubspot_client(settings, NO_SECRETS) as client:
            return await check_lookup_fields("hubspot", client,
                                             [replace(companies, lookup_field="numberofemployees")])

    (number,) = asyncio.run(run())
    assert number.verdict == "unusable" and "is a number/number property; the key is text" in number.reason


@pytest.fixture
def own_hubspot(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A HubSpot sandbox of its own: its property is deleted for good (the recycle bin keeps the name)."""
    sandbox = start_sandbox(tmp_path / "hubspot", scale=200)
    yield sandbox
    sandbox.stop()


def test_check_after_the_deal_key_property_is_deleted_names_it_and_how_to_make_it(
    own_hubspot: RunningSandbox, tmp_path: Path
) -> None:
    """Issue 13, OPS-3: the admin deletes deals' crm_pipelines_key (HubSpot's DELETE property API); `crm-pipelines
    check` keeps the credentials line valid, prints a MISSING line naming the property with HubSpot's steps and
    API call to make it, still finds the companies' and tasks' ones, and exits 1; no token is printed."""
    with own_hubspot.api() as client:
        assert client.delete("/crm/v3/properties/deals/crm_pipelines_key").status_code == 204
    path = settings_for(own_hubspot, tmp_path / "s.yaml", salesforce={"enabled": False},
                        dynamics={"enabled": False})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSPOT_", "SALESFORCE_", "DYNAMICS_"))}
    done = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "check", "--settings", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines[0] == "hubspot     valid    (sandbox) credentials accepted"
    assert "hubspot     present  lookup field companies.crm_pipelines_key" in lines
    assert "hubspot     present  lookup field tasks.crm_pipelines_key" in lines
    (missing,) = [i for i, line in enumerate(lines) if "MISSING" in line]
    assert lines[missing].startswith(
        "hubspot     MISSING  lookup field deals.crm_pipelines_key: no deals property crm_pipelines_key "
        "(GET /crm/v3/properties/deals/crm_pipelines_key answered 404)")
    how = lines[missing + 1]
    assert how.startswith(" " * 21 + "to make it: In HubSpot: Settings > Properties > select Deal properties > "
                          "Create property: label 'crm_pipelines key', internal name 'crm_pipelines_key', field "
                          "type 'Single-line text'. On its Rules tab tick 'Require unique values for this property'.")
    assert ('POST /crm/v3/properties/deals {"name": "crm_pipelines_key", "label": "crm_pipelines key", "type": '
            '"string", "fieldType": "text", "groupName": "dealinformation", "hasUniqueValue": true}') in how
    assert own_hubspot.token not in done.stdout + done.stderr


def test_the_check_command_passes_with_the_sandboxes_fields_present(three: RunningSandbox, tmp_path: Path) -> None:
    """Issue 13, OPS-3: `crm-pipelines check` on the three sandboxes exits 0 with a present line per field."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSPOT_", "SALESFORCE_", "DYNAMICS_"))}
    path = settings_for(three, tmp_path / "s.yaml")
    done = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "check", "--settings", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    present = [line for line in done.stdout.splitlines() if " present  lookup field " in line]
    assert len(present) == 7 and "salesforce  present  lookup field Task.External_Id__c" in present
    assert "dynamics    present  lookup field opportunities.crm_pipelines_key" in present

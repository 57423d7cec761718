"""CONF-1/2's change times: an incremental HubSpot extract keeps, beside each changed record, when each of
its properties last changed (HubSpot's property history), and the plan's merge compares those field times,
not the record's; through real Dagster runs on the sandboxes (both state backends). The bulk import does
not spend the calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.sync import merge
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_records, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def _record(engine, contact: str) -> dict:
    table = mirror.table_for("hubspot", "contacts")
    with engine.connect() as conn:
        return conn.execute(table.select().where(table.c.id == contact)).one().record


def test_conf_1_an_incremental_extract_keeps_each_propertys_own_change_time(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    engine = create_state_engine(state_url)
    contact = next(iter(sandbox_records(hubspot_sandbox, "contacts")))
    assert "propertyTimes" not in _record(engine, contact)  # the bulk import reads no history

    with hubspot_sandbox.admin() as admin:
        admin.patch(f"/ui/contacts/{contact}", json={"properties": {"firstname": "Early"}}).raise_for_status()
        time.sleep(1.1)
        admin.patch(f"/ui/contacts/{contact}", json={"properties": {"phone": "+49 30 1234"}}).raise_for_status()
    assert sync_changes(settings, assets, instance, resources)

    record = _record(engine, contact)
    times = {k: datetime.fromisoformat(v) for k, v in record["propertyTimes"].items()}
    updated = datetime.fromisoformat(record["updatedAt"])
    # the record's time is the phone's; the first name changed a second before it
    assert times["phone"] == updated
    assert 1 <= (updated - times["firstname"]).total_seconds() < 60
    assert record["properties"]["firstname"] == "Early"


def test_conf_2_a_property_changed_long_before_the_other_side_loses_though_its_record_changed_since(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    """A HubSpot first name changed 20 minutes ago, a Salesforce first name changed now, then the HubSpot
    contact's phone: by record times the two names changed a second apart (a conflict HubSpot, the default
    app, wins); by HubSpot's property history they are 20 minutes apart, and Salesforce's later name wins."""
    runs = three_sandbox_runs()
    sandbox, engine = runs.sandbox, runs.engine
    links = link_store.load(engine, kind="contact")
    pair = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].sort_values("hubspot_id")
    hs_id, sf_id = str(pair.iloc[0]["hubspot_id"]), str(pair.iloc[0]["salesforce_id"])

    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_id}", json={"properties": {"firstname": "Hubert"}},
                 params={"at": (datetime.now(UTC) - timedelta(minutes=20)).isoformat()}).raise_for_status()
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Contact/{sf_id}", json={"FirstName": "Sally"}).raise_for_status()
    time.sleep(1.1)
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_id}", json={"properties": {"phone": "+49 30 5555"}}).raise_for_status()
    assert runs.sync_changes()
    runs.unify()

    plans = build_plans(engine, runs.settings)
    to_hubspot = plans["hubspot"].updates.set_index(["record_id", "field"])
    assert to_hubspot.loc[(hs_id, "firstname"), "new"] == "Sally"
    assert to_hubspot.loc[(hs_id, "firstname"), "decided_by"] == merge.LATEST
    to_salesforce = plans["salesforce"].updates
    assert not ((to_salesforce["record_id"] == sf_id) & (to_salesforce["field"] == "firstname")).any()

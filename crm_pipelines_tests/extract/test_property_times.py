"""CONF-1/2's change times: an incremental HubSpot extract keeps, beside each changed record, when each of
its properties last changed (HubSpot's property history), through a real Dagster run on the HubSpot sandbox
(both state backends); the bulk import does not spend the calls."""

from __future__ import annotations

import time
from datetime import datetime

import dagster as dg

from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_records, sync_changes
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

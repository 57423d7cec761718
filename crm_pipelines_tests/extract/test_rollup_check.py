"""ROLL-1: the rollup drift check through real Dagster runs on a HubSpot sandbox (both state backends): our
HubSpot-only rollups (``unified/contact_rollups``) against HubSpot's own calculated contact properties as
extracted. It passes on a consistent extract, reports the contact and figure when the two disagree, and passes
again once the data is consistent."""

from __future__ import annotations

import dagster as dg
import httpx

from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.unified.assets import build_unified_assets, build_unified_checks
from crm_pipelines.defs.unified.rollup_check import hubspot_rollups
from crm_pipelines.state import unified
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.transform.rollup_check import ROLLUP_DRIFT
from crm_pipelines_tests.extract.test_extract import backfill, evaluate
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

DEALS, CONTACTS = dg.AssetKey(["hubspot", "deals"]), dg.AssetKey(["hubspot", "contacts"])


def _drift(instance, settings, resources) -> dg.AssetCheckEvaluation:
    result = dg.materialize([build_unified_assets(settings), *build_unified_checks()], instance=instance,
                            resources=resources)  # fmt: skip
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}[ROLLUP_DRIFT]


def _extract(instance, settings, assets, resources, keys: set[dg.AssetKey]) -> None:
    """The change sensor's runs for these objects only (the others' changes stay unread)."""
    requests = evaluate(build_change_sensor(settings, daily_partitions(settings.extract)), instance, resources)
    chosen = [r for r in requests.run_requests if set(r.asset_selection) <= keys]
    assert chosen, [r.asset_selection for r in requests.run_requests]
    for r in chosen:
        run = dg.materialize(assets, selection=r.asset_selection, instance=instance, resources=resources,
                             partition_key=r.partition_key, tags=r.tags)  # fmt: skip
        assert run.success


def test_roll_1_rollup_drift_check_passes_when_consistent_and_reports_a_difference(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    engine = create_state_engine(state_url)

    consistent = _drift(instance, settings, resources)
    assert consistent.passed, consistent.metadata
    assert consistent.metadata["count"].value == 0
    extracted = hubspot_rollups(engine)  # the extract reads HubSpot's calculated values
    assert extracted["total_revenue"].notna().sum() > 10 and extracted["num_associated_deals"].notna().sum() > 10

    # a person raises the amount of a contact's closed-won deal: HubSpot recomputes the contact's total_revenue
    rollups = unified.read(engine, "contact_rollups")
    contact = str(rollups[rollups["total_revenue"].notna()].iloc[0]["contact_id"])
    facts = unified.read(engine, "deal_facts")
    pairs = unified.read(engine, "hubspot_deal_contacts")
    won = set(facts.loc[facts["is_won"].astype(bool), "deal_id"].astype(str))
    deal = sorted(set(pairs.loc[pairs["contact_id"].astype(str) == contact, "deal_id"].astype(str)) & won)[0]
    amount = float(facts.set_index(facts["deal_id"].astype(str)).loc[deal, "amount"] or 0)
    with httpx.Client(base_url=f"{hubspot_sandbox.base_url}/__sandbox__/ui", timeout=30) as ui:
        ui.patch(f"/deals/{deal}", json={"properties": {"amount": str(amount + 1000)}}).raise_for_status()

    # only the deals are extracted: our rollups move, HubSpot's values as extracted do not yet
    _extract(instance, settings, assets, resources, {DEALS})
    drift = _drift(instance, settings, resources)
    assert not drift.passed
    assert drift.metadata["count"].value >= 1
    assert drift.metadata["by"].value.get("total_revenue", 0) >= 1
    sample = drift.metadata["sample"].value
    found = next(s for s in sample if s["contact_id"] == contact and s["figure"] == "total_revenue")
    assert round(found["ours"] - found["hubspot"], 2) == 1000.0

    # the contacts' recomputed values are extracted: consistent again
    _extract(instance, settings, assets, resources, {CONTACTS})
    again = _drift(instance, settings, resources)
    assert again.passed and again.metadata["count"].value == 0, again.metadata

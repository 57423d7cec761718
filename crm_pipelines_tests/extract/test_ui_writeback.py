"""Issue 15: what the Dagster UI shows of the ``unified`` and ``writeback`` groups, read back from the instance's
materialization events after real runs on the three sandboxes (both state backends): the plans' tables (counts
per object and action, deferrals included; a few updates per object as old → new with their rule), the writes'
results per object and the records the CRM refused with its error, the API calls against the 24 h budget as
numbers, ``contact_rollups``' sample and totals (kept right by an incremental run), and the failing checks saying
what to do."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import ROLLUPS, build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS, WITHIN_BUDGET, build_plan_assets
from crm_pipelines.defs.writeback.write_assets import FAILED_SHOWN, FAILED_WRITES, WRITES, build_write_assets
from crm_pipelines.settings import load_settings
from crm_pipelines.state import outbox, plan_store, unified
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

GENEROUS = 1_000_000


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    """The metadata of ``key``'s latest materialization, as the UI reads it from the event log."""
    event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None, key
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _table(markdown: str) -> pd.DataFrame:
    """A Markdown table's rows (the header row names the columns)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def _rollup_totals(engine) -> dict[str, float]:
    rows = unified.read(engine, "contact_rollups")
    revenue = pd.to_numeric(rows["total_revenue"], errors="coerce").fillna(0)
    return {"rollup_contacts": len(rows), "rollup_contacts_with_revenue": int(revenue.ne(0).sum()),
            "rollup_deal_associations": int(rows["num_associated_deals"].fillna(0).sum()),
            "rollup_total_revenue": round(float(revenue.sum()), 2)}  # fmt: skip


def _shown_totals(meta: dict) -> dict[str, float]:
    return {k: meta[k] for k in ("rollup_contacts", "rollup_contacts_with_revenue", "rollup_deal_associations",
                                 "rollup_total_revenue")}  # fmt: skip


def _same_totals(meta: dict, engine) -> None:
    shown, counted = _shown_totals(meta), _rollup_totals(engine)
    assert shown["rollup_total_revenue"] == pytest.approx(counted.pop("rollup_total_revenue"), abs=0.011)
    del shown["rollup_total_revenue"]
    assert shown == counted


def test_issue15_plans_writes_and_rollups_show_their_tables_and_budget(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    path = tmp_path / "crm_pipelines.yaml"
    limits = {"salesforce": {"api_call_limit": GENEROUS}, "dynamics": {"api_call_limit": GENEROUS}}
    sandbox_settings(path, three_sandboxes, state_url, connections=limits)
    settings = load_settings(path)
    resources = build_resources(settings, str(path), state_url=state_url)
    extract, unified_assets = build_extract_assets(settings), build_unified_assets(settings)
    backfill(instance, settings, extract, resources)
    first = dg.materialize([unified_assets], instance=instance, resources=resources)
    assert first.success
    engine = create_state_engine(state_url)

    # contact_rollups: five contacts with identity, email, deals and revenue, and totals equal to the table's
    meta = _latest(instance, ROLLUPS)
    assert meta["rollup_sample_is"] == "the contacts with the highest total revenue"
    sample = _table(meta["rollup_sample"])
    assert list(sample.columns) == ["identity", "email", "HubSpot contact", "associated deals", "total revenue"]
    # (a contact with deals may have no valid email: the generator leaves some out)
    assert len(sample) == 5 and sample["identity"].str.len().gt(0).sum() >= 3
    assert sample["email"].str.contains("@").sum() >= 3 and sample["HubSpot contact"].str.len().gt(0).all()
    _same_totals(meta, engine)
    assert meta["rollup_contacts"] > 5
    # the checks that fail on the sandboxes' messy data on purpose say why and what to do
    failing = [e for e in first.get_asset_check_evaluations() if not e.passed]
    assert "contacts_without_valid_email" in {e.check_name for e in failing}
    for evaluation in failing:
        assert "what_to_do" in evaluation.metadata and "why" in evaluation.metadata, evaluation.check_name

    # Dynamics' budget: one call left, so its plan (a $batch call per object: two here) defers writes (OPS-8)
    used = SqlCallLedger(engine).used("dynamics", time.time())
    assert used > 0  # the bulk import's calls, counted once a limit is set
    limits["dynamics"]["api_call_limit"] = used + 1
    sandbox_settings(path, three_sandboxes, state_url, connections=limits)
    settings = load_settings(path)
    resources = build_resources(settings, str(path), state_url=state_url)
    run = dg.materialize([build_unified_assets(settings), build_plan_assets(settings), *build_write_assets(settings)],
                         selection=[*PLANS.values(), *WRITES.values()], instance=instance, resources=resources)
    assert run.success
    checks = {(e.asset_key, e.check_name): e for e in run.get_asset_check_evaluations()}

    # the Salesforce plan: records per object and action, and a few updates of each object, old → new by rule
    plan = _latest(instance, PLANS["salesforce"])
    counts = _table(plan["counts"]).set_index("object")
    assert list(counts.columns) == ["create", "update", "associate", "delete", "deferred", "left out", "not deleted",
                                    "finding"]  # fmt: skip
    assert int(counts.loc["contact", "create"]) == plan["creates_by_object"]["contact"] > 0
    examples = _table(plan["update_examples"])
    assert list(examples.columns) == ["object", "record", "field", "old → new", "rule"]
    summary = plan_store.summary(engine, "salesforce")
    updated = summary[(summary["part"] == "updates") & (summary["dim"] == "records")].set_index("value")["n"]
    assert updated.sum() > 0
    for kind, records in updated.items():  # every object with updates shows 1 to 5 of them
        assert 1 <= (examples["object"] == kind).sum() <= 5, (kind, records)
    assert examples["old → new"].str.contains(" → ").all() and examples["rule"].str.len().gt(0).all()
    # the API calls as numbers a user can plot
    assert plan["api_calls_budget_24h"] == GENEROUS and plan["api_calls_used_24h"] > 0
    assert isinstance(plan["api_calls_planned"], int) and plan["api_calls_planned"] > 0
    # HubSpot has no limit: no call is counted, and the UI says so instead of showing 0
    assert "api_calls_used_24h" not in _latest(instance, PLANS["hubspot"])
    assert "api_call_limit" in _latest(instance, PLANS["hubspot"])["api_call_limit_24h"]

    # the Dynamics plan: what the budget defers is in the counts, and the check says what to do
    dynamics = _latest(instance, PLANS["dynamics"])
    deferred = _table(dynamics["counts"])["deferred"].astype(int)
    assert deferred.sum() == dynamics["deferred_records"] > 0
    assert dynamics["api_calls_budget_24h"] == used + 1 and dynamics["api_calls_left_24h"] <= 1
    budget = checks[(PLANS["dynamics"], WITHIN_BUDGET)]
    assert not budget.passed and "api_call_limit" in budget.metadata["what_to_do"].value

    # the Salesforce writes: results per object, and the Leads it refuses with the API's code and text (OPS-6)
    writes = _latest(instance, WRITES["salesforce"])
    results = _table(writes["results"]).set_index("object")
    assert list(results.columns) == ["created", "updated", "deleted", "associated", "failed"]
    refused = outbox.failures(engine, "salesforce")
    assert writes["failed"] == len(refused) > 0
    for obj, n in refused["object"].value_counts().items():
        assert int(results.loc[obj, "failed"]) == n
    assert int(results.loc["**total**", "created"]) == writes["created"] > 0
    failed = _table(writes["failed_records"])
    assert list(failed.columns) == ["operation", "object", "record", "error code", "API's message", "attempts"]
    assert len(failed) == min(FAILED_SHOWN, len(refused)) and writes["failed_records_total"] == len(refused)
    assert set(failed["error code"]) == {"REQUIRED_FIELD_MISSING"}
    assert set(failed["API's message"]) == {"Required fields are missing: [Company]"}
    assert f"{len(refused)} records refused" in writes["failed_records"]
    assert writes["api_calls_used_24h"] >= writes["api_calls"] > 0 and writes["api_calls_budget_24h"] == GENEROUS
    assert "what_to_do" in checks[(WRITES["salesforce"], FAILED_WRITES)].metadata

    # an incremental run keeps the rollup totals right: a closed-won deal's amount raised in HubSpot (Dynamics'
    # budget back to generous: the change sensor polls it)
    limits["dynamics"]["api_call_limit"] = GENEROUS
    sandbox_settings(path, three_sandboxes, state_url, connections=limits)
    settings = load_settings(path)
    resources = build_resources(settings, str(path), state_url=state_url)
    facts, pairs = unified.read(engine, "deal_facts"), unified.read(engine, "hubspot_deal_contacts")
    won = facts[facts["is_won"].astype(bool) & facts["deal_id"].astype(str).isin(set(pairs["deal_id"].astype(str)))]
    deal = won.iloc[0]
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.patch(f"/deals/{deal['deal_id']}", json={"properties": {"amount": str(float(deal["amount"] or 0) + 1000)}}
                 ).raise_for_status()  # fmt: skip
    sync_changes(settings, extract, instance, resources)
    again = dg.materialize([build_unified_assets(settings)], instance=instance, resources=resources)
    assert again.success
    meta = _latest(instance, ROLLUPS)
    assert meta["mode"] == "incremental"
    _same_totals(meta, engine)
    assert meta["rollup_sample_is"].startswith("contacts whose rollups this run recomputed")
    assert 1 <= len(_table(meta["rollup_sample"])) <= 5

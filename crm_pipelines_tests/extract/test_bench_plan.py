"""`crm-pipelines bench plan` end to end on a small universe (issue 12, OPS-8): the import, a full `unified`,
the plans of a first sync through a real Dagster run, then 1,000 edits carried into `unified` and the plans
again (the stored plan brought up to date incrementally); its figures as one JSON object on the last line,
the API calls planned never below the bound that batching cannot beat."""

from __future__ import annotations

from crm_pipelines_tests.bench_cli import bench_figures


def test_bench_plan_plans_a_first_sync_then_after_edits(pg_url: str) -> None:
    figures = bench_figures("plan", "--scale", "300", "--database-url", pg_url)
    assert figures["backend"] == "postgresql"
    # a first sync creates in every CRM what only the others hold (CON-1, COM-1, DEAL-1)
    assert all(n > 0 for n in figures["planned_writes_by_crm"].values()), figures
    assert figures["planned_writes"] == sum(figures["planned_writes_by_crm"].values())
    assert figures["api_calls_planned"] >= figures["api_calls_min"] > 0
    assert figures["api_calls_ratio"] == round(figures["api_calls_planned"] / figures["api_calls_min"], 4)
    assert figures["initial_plan_s"] > 0 and figures["incremental_plan_s"] > 0 and figures["peak_rss_mb"] > 0
    # the first plan is a full one; after the edits only the identities they reach are replanned (issue 12)
    assert figures["initial_plan_mode"] == "full" and figures["incremental_plan_mode"] == "incremental", figures
    assert 0 < figures["incremental_identities_replanned"] < figures["identities"], figures
    # a plan run's time, split: the incremental plan's own work, and what a run that finds nothing to do costs
    assert 0 < figures["incremental_plan_update_s"] < figures["incremental_plan_s"], figures
    assert figures["plan_run_floor_s"] > 0, figures

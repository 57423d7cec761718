"""`crm-pipelines bench unified` end to end on a small universe (issue 11): the import, a full `unified`, 1,000
edits in the sandboxes' UIs (fewer records here: each edited at most once), then the change sensor's run
with the extracts of what changed and the incremental `unified` after them, all through real Dagster runs
on PostgreSQL; its figures as one JSON object on the last line."""

from __future__ import annotations

from crm_pipelines_tests.bench_cli import bench_figures


def test_bench_unified_runs_a_full_then_an_incremental_update(pg_url: str) -> None:
    figures = bench_figures("unified", "--scale", "300", "--database-url", pg_url)
    assert figures["backend"] == "postgresql" and figures["incremental_mode"] == "incremental"
    assert figures["extract_steps"] == 3 and sum(figures["edited"].values()) > 0
    assert 0 < figures["changed_rows"] < figures["full_rows_written"]
    assert figures["stored_rows_read"] > 0 and figures["stored_read_rounds"] >= 1
    assert figures["incremental_s"] >= figures["incremental_extract_s"] > 0 and figures["run_start_s"] > 0
    # the tick, then the run worker's set-up, then the extract steps, all counted from the tick
    assert figures["tick_s"] > 0 and figures["run_setup_s"] > 0
    assert figures["tick_s"] + figures["run_setup_s"] < figures["incremental_extract_s"]

"""`crm-pipelines bench writeback` end to end on a small universe (issue 13): the import and a first sync until it
converges, then 1 % of the records edited across the three sandboxes with their rate limits on, and the sync
cycles after them through real Dagster runs on PostgreSQL; its figures as one JSON object on the last line:
records written, write calls against the fewest the batch sizes allow, the write runs' time against the bound
of the published rate limits, no duplicate in any sandbox, and the refusals with their reasons."""

from __future__ import annotations

from crm_pipelines_tests.bench_cli import bench_figures

KEYS = {"records_written", "records_sent", "write_calls", "write_calls_min", "calls_ratio", "wall_s", "bound_s",
        "time_ratio", "duplicates", "duplicates_by_object", "failed", "failed_reasons", "failed_outstanding",
        "cycles", "edited", "not_yet_written", "write_calls_by_endpoint"}


def test_bench_writeback_writes_the_edits_of_a_converged_sync_without_duplicates(pg_url: str) -> None:
    figures = bench_figures("writeback", "--scale", "300", "--database-url", pg_url)
    assert set(figures) >= KEYS, KEYS - set(figures)
    assert figures["backend"] == "postgresql" and figures["edited"] > 0
    # the edits reach the other CRMs (HubSpot first: an edit in Salesforce reaches Dynamics a cycle later)
    assert figures["records_written"] > 0 and figures["cycles"] >= 1, figures
    assert figures["duplicates"] == 0, figures["duplicates_by_object"]
    # no batching beats records / batch size; the sandboxes counted every call the runs made
    assert figures["write_calls"] >= figures["write_calls_min"] > 0, figures
    assert figures["write_calls"] == sum(sum(e.values()) for e in figures["write_calls_by_endpoint"].values())
    assert figures["wall_s"] > 0 and figures["bound_s"] > 0, figures
    # every refusal is counted with its reason (OPS-6)
    assert figures["failed"] == sum(figures["failed_reasons"].values()), figures
    assert figures["failed_outstanding"] == sum(figures["failed_outstanding_reasons"].values()), figures

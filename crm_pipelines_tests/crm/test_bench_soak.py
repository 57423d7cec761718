"""`crm-pipelines bench soak` end to end on a small universe (issue 18): the bulk import fault-free, then with
every fault kind on every endpoint (token endpoints included), through real Dagster runs on PostgreSQL.
The faulted import must finish without failed runs, log in once per connection, and leave every mirror
table as the fault-free one did (OPS-1; DESIGN invariants 3-4)."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from crm_pipelines_tests.bench_cli import bench_run


def test_bench_soak_ends_where_the_fault_free_import_did(pg_url: str) -> None:
    start = (date.today() - timedelta(days=30)).isoformat()
    figures, output = bench_run("soak", "--scale", "300", "--fault-seed", "1", "--start-date", start,
                                "--database-url", pg_url, "--timeout-seconds", "2")
    assert figures["records"] == figures["source_records"] > 0
    assert figures["failed_runs"] == figures["fault_free_failed_runs"] == 0, figures["failures"]
    assert figures["mirror_equal"] == 1, figures["mirror_differs"]
    # one login per connection for the whole import (one process per CRM), faults or not
    assert figures["token_calls_by_crm"] == {"hubspot": 1, "salesforce": 1, "dynamics": 1}
    assert figures["token_calls"] <= figures["runs"] and figures["fault_free_token_calls"] == 3
    assert figures["api_requests"] > figures["fault_free_api_requests"]  # the faults happened, and were retried
    assert figures["wall_s"] > 0 and figures["fault_free_wall_s"] > 0
    password = sa.engine.make_url(pg_url).password
    assert password and password not in output  # OPS-3: secrets never reach output

"""`crm-pipelines bench extract` end to end on a small universe (issue 6): the bulk import through real
Dagster runs on PostgreSQL, one process per CRM, must leave the mirror holding every record the
sandboxes hold (OPS-1), and print its figures as one JSON object on the last line."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from crm_pipelines_tests.bench_cli import bench_run


def test_bench_extract_mirrors_every_sandbox_record(pg_url: str) -> None:
    start = (date.today() - timedelta(days=30)).isoformat()
    figures, output = bench_run("extract", "--scale", "300", "--start-date", start, "--database-url", pg_url,
                                timeout=600)
    assert figures["backend"] == "postgresql"
    assert figures["records"] == figures["source_records"] > 0
    assert set(figures["wall_by_crm"]) == set(figures["bound_by_crm"]) == {"hubspot", "salesforce", "dynamics"}
    # per CRM the sum over its objects, overall the slowest CRM: the three APIs' limits are independent
    assert figures["bound_s"] == max(figures["bound_by_crm"].values())
    assert figures["runs"] == 3  # per CRM one backfill run: 31 daily partitions fit in one (≤ 3,660 days)
    assert figures["upsert_records_per_s"] > 0 and figures["peak_rss_mb"] > 0
    password = sa.engine.make_url(pg_url).password
    assert password and password not in output  # OPS-3: secrets never reach output

"""`crm-pipelines bench sync` end to end on a small universe (issue 14, OPS-1): after the import and a converged
first sync, the Dagster daemon alone (default settings, rate limits on) carries a short stream of edits made in
the three sandboxes' UIs to the CRMs each record is linked in; its figures as one JSON object on the last line:
every edit arrived, with its latency, what an idle loop costs per connection, and no duplicate in any CRM."""

from __future__ import annotations

import os

import pytest

from crm_pipelines_tests.bench_cli import bench_figures

CRMS = {"hubspot", "salesforce", "dynamics"}
# a short stream: 6 edits (each source CRM twice), a short idle phase after a short settling (the default waits
# out the change sensor's busy spell after the set-up's writes: ten minutes); the set-up makes up most of the
# few minutes it takes; a small set-up's writes, read again once by the first extracts, need not be waited out
SHORT = ("--scale", "300", "--duration-s", "24", "--edit-every-s", "4", "--idle-s", "30", "--drain-s", "240",
         "--settle-s", "45", "--no-drain-lag")  # fmt: skip


def test_bench_sync_the_daemon_carries_every_edit_without_duplicates(pg_url: str) -> None:
    if not os.environ.get("DAGSTER_PG_HOST"):
        pytest.skip("the daemon needs the PostgreSQL instance `make test` provides")
    figures = bench_figures("sync", *SHORT, "--database-url", pg_url, timeout=1500)
    assert figures["edits"] == 6 and figures["edits_refused"] == 0, figures
    # every edit that should sync reached every CRM its record is linked in, read back through their APIs
    assert figures["arrived"] == figures["expected"] == figures["edits"], figures["not_arrived"]
    assert figures["arrivals"] == figures["expected_pairs"] >= figures["edits"], figures
    assert 0 < figures["latency_p50_s"] <= figures["latency_p95_s"] <= figures["latency_max_s"], figures
    # people edited on both sides: in HubSpot, and in Salesforce as a Contact or a Lead (CON-4), as the seed picks
    edited = set(figures["edits_by_field"])
    assert "hubspot.contacts.firstname" in edited, edited
    assert edited & {"salesforce.Contact.FirstName", "salesforce.Lead.FirstName"}, edited
    assert figures["duplicates"] == 0, figures["duplicates_by_object"]
    # an idle loop still polls each CRM for changes (the change sensor), and says so per connection
    assert set(figures["idle_calls_per_hour"]) == CRMS, figures
    assert all(n > 0 for n in figures["idle_calls_per_hour"].values()), figures
    assert figures["api_calls_per_edit"] > 0 and figures["sensor_interval_s"] > 0, figures
    assert figures["runs_launched"] > 0 and figures["runs_failed"] == 0, figures

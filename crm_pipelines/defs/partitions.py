"""Daily partitions on modification time; today's partition is the one read incrementally."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.settings.model import Extract


def daily_partitions(extract: Extract) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today is a partition too, so changes made today have a home
    return dg.DailyPartitionsDefinition(start_date=extract.start_date.isoformat(), end_offset=1, timezone="UTC")


def backfill_policy(extract: Extract) -> dg.BackfillPolicy:
    """A bulk import is runs of up to ``partitions_per_run`` days each, one read per run's window. By default
    (3,660) a history of up to ten years is one run: each object read once through every rate bucket its API
    offers, every record filed into its daily partition by modification time (issue 17); a lower setting makes
    smaller units to resume from, each read on its own."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=extract.partitions_per_run)

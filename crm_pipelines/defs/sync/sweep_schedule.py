"""``crm_sweep_schedule``: ``sync_job`` every hour (issue 14), so deletions are reconciled (HubSpot's archived
records, the others' deleted ones) and refused records whose retry came due are resent even when nothing
changes. It waits while a connection is not imported yet or a bulk import is reading one: ``sync_job`` writes
to every connection, and creates into an incomplete mirror would duplicate records."""

# No `from __future__ import annotations` here: Dagster reads the schedule's resource annotation at definition time.

import dagster as dg

from crm_pipelines.defs.extract.sensors import polled_objects
from crm_pipelines.defs.resources import StateDatabase
from crm_pipelines.defs.run_tags import KIND_TAG, SWEEP
from crm_pipelines.defs.sync.busy import busy_connections, chain_in_progress
from crm_pipelines.defs.sync.sync_job import SYNC_JOB
from crm_pipelines.extract.runner import INCREMENTAL
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings
from crm_pipelines.state.cursors import get_cursor

SWEEP_SCHEDULE = "crm_sweep_schedule"
SWEEP_CRON = "17 * * * *"  # hourly, off the hour that other schedules crowd


def build_sweep_schedule(partitions: dg.PartitionsDefinition, settings: Settings) -> dg.ScheduleDefinition:
    objects = polled_objects(settings)
    extracts = {crm: {dg.AssetKey([c, o]) for c, o in objects if c == crm} for crm, _ in objects}

    @dg.schedule(name=SWEEP_SCHEDULE, cron_schedule=SWEEP_CRON, job_name=SYNC_JOB,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=with_rule_refs(
                     "Hourly at :17, the sweep: sync_job on today's partition, which catches what the change sensor "
                     "cannot see (deletions and archived records, DEL-1..3) and resends the refused writes whose retry "
                     "came due (OPS-6). Skips while a connection is not imported yet or is being imported, or while a "
                     "sync run is in progress"))
    def sweep(context: dg.ScheduleEvaluationContext, state: StateDatabase) -> dg.RunRequest | dg.SkipReason:
        engine = state.engine()
        missing = sorted({c for c, o in objects if get_cursor(engine, c, o, INCREMENTAL) is None})
        if missing:
            return dg.SkipReason(f"not imported yet: {', '.join(missing)} (run the bulk import first)")
        busy = busy_connections(context.instance, extracts)
        if busy:
            return dg.SkipReason(f"a bulk import is reading {', '.join(sorted(busy))}; the sweep waits an hour")
        if chain_in_progress(context.instance):
            return dg.SkipReason("a sync run is in progress; the sweep waits for the next hour")
        return dg.RunRequest(partition_key=partitions.get_last_partition_key(), tags={KIND_TAG: SWEEP})

    return sweep

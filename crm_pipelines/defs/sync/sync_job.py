"""``sync_job``: the whole sync on demand (issue 14) for every enabled connection: today's incremental extract of
every object (each with its deletion sweep: HubSpot's archived records, the others' deleted ones), ``unified``,
the plans and the writes (which resend the refused records whose retry came due, OPS-6). The UI's launchpad runs
it for a chosen day (today's partition is the incremental one); ``crm_sweep_schedule`` runs it every hour, so
deletions are reconciled and retries sent even when nothing changes."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.defs.extract.sensors import polled_objects
from crm_pipelines.defs.run_tags import (
    CHAIN_TAG,
    INCREMENTAL_SYNC,
    KIND_TAG,
    PRIORITY_TAG,
    SWEEP,
    SYNC_PRIORITY,
    connection_tags,
)
from crm_pipelines.defs.sync.busy import chain_in_progress
from crm_pipelines.defs.sync.chain import sync_chain
from crm_pipelines.settings import Settings

SYNC_JOB = "sync_job"
SWEEP_SCHEDULE = "crm_sweep_schedule"
SWEEP_CRON = "17 * * * *"  # hourly, off the hour that other schedules crowd


def build_sync_job(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.UnresolvedAssetJobDefinition:
    chain = sync_chain(settings)
    objects = polled_objects(settings)
    crms = sorted({c for c, _ in objects})
    assets, checks = chain.selection([crm for crm in chain.writes if crm in crms])
    selection = dg.AssetSelection.assets(*[dg.AssetKey(list(o)) for o in objects], *assets).without_checks()
    return dg.define_asset_job(
        SYNC_JOB, selection=selection | dg.AssetSelection.checks(*checks), partitions_def=partitions,
        tags={CHAIN_TAG: "true", KIND_TAG: INCREMENTAL_SYNC, PRIORITY_TAG: SYNC_PRIORITY, **connection_tags(crms)},
        description="The whole sync for every enabled connection: the day's extracts with their deletion sweeps, "
                    "unified, the plans and the writes (with the retries that came due). Pick today's partition.",
    )


def build_sweep_schedule(job: dg.UnresolvedAssetJobDefinition,
                         partitions: dg.PartitionsDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(name=SWEEP_SCHEDULE, cron_schedule=SWEEP_CRON, job=job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Hourly: sync_job on today's partition (deletions, archived records, due retries)")
    def sweep(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if chain_in_progress(context.instance):
            return dg.SkipReason("a sync run is in progress; the sweep waits for the next hour")
        return dg.RunRequest(partition_key=partitions.get_last_partition_key(), tags={KIND_TAG: SWEEP})

    return sweep

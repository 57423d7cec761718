"""``sync_job``: the whole sync on demand (issue 14) for every enabled connection: today's incremental extract of
every object (each with its deletion sweep: HubSpot's archived records, the others' deleted ones), ``unified``,
the plans and the writes (which resend the refused records whose retry came due, OPS-6). The UI's launchpad runs
it for a chosen day (today's partition is the incremental one): run it once every connection's bulk import is
done, since it writes to every one. ``crm_sweep_schedule`` (``sweep_schedule.py``) runs it every hour."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.defs.extract.sensors import polled_objects
from crm_pipelines.defs.run_tags import CHAIN_TAG, SYNC_RUN_TAGS, connection_tags
from crm_pipelines.defs.sync.chain import sync_chain
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings

SYNC_JOB = "sync_job"


def build_sync_job(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.UnresolvedAssetJobDefinition:
    chain = sync_chain(settings)
    objects = polled_objects(settings)
    crms = sorted({c for c, _ in objects})
    assets, checks = chain.selection([crm for crm in chain.writes if crm in crms])
    selection = dg.AssetSelection.assets(*[dg.AssetKey(list(o)) for o in objects], *assets).without_checks()
    return dg.define_asset_job(
        SYNC_JOB, selection=selection | dg.AssetSelection.checks(*checks), partitions_def=partitions,
        tags={**SYNC_RUN_TAGS, CHAIN_TAG: "true", **connection_tags(crms)},
        description=with_rule_refs(
            "The whole sync for every enabled connection (OPS-1): the day's extracts with their deletion sweeps "
            "(DEL-1..3), unified, the plans (OPS-5) and the writes, with the retries that came due (OPS-6). Pick "
            "today's partition; run it once every connection's bulk import is done."),
    )

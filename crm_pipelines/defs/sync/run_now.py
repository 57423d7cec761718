"""``crm-pipelines sync``: one pass of the sync loop on demand (issue 14), what the daemon does after a change,
in this process: the change sensor's tick and the runs it asks for (the extracts of what changed, then
``unified``, the plans and the writes, in one run). Real Dagster runs on the instance in ``DAGSTER_HOME``,
tagged as the daemon's are, so the UI shows them beside the sensor's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.sensors import REASON_TAG
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.run_tags import CHAIN_TAG
from crm_pipelines.defs.sync.chain import sync_chain
from crm_pipelines.defs.sync.change_sensor import sync_requests
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
from crm_pipelines.extract.catalog import EXTRACTED as CRMS
from crm_pipelines.settings import load_settings

TRIGGER_TAG, ON_DEMAND = "crm_pipelines/trigger", "on_demand"


@dataclass
class SyncPass:
    """What one pass did: the runs that failed, and each CRM's writes."""

    failed: list[str] = field(default_factory=list)  # runs that failed, with their run id
    writes: dict[str, dict[str, Any]] = field(default_factory=dict)  # per CRM: the write asset's metadata


def sync_once(instance: dg.DagsterInstance, settings_path: str | None,
              say: Callable[[str], None] = lambda _: None) -> SyncPass:
    """One pass, saying each step as it goes (``say``)."""
    settings = load_settings(settings_path)
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    assets = [*build_extract_assets(settings), build_unified_assets(settings), build_plan_assets(),
              *build_write_assets()]  # fmt: skip
    today = daily_partitions(settings.extract).get_last_partition_key()
    done = SyncPass()
    # its runs execute here, outside the run queue: no chain run beside one in progress
    tick = sync_requests(settings, sync_chain(settings), today, instance, resources["state"],
                         resources["crm_connections"], queued=False)  # fmt: skip
    for line in tick.said:
        say(line)
    if not tick.requests:
        say("nothing changed since the last sync")
    for request in tick.requests:
        extracts = ", ".join(".".join(k.path) for k in request.asset_selection or [] if k.path[0] in CRMS)
        run = dg.materialize(assets, selection=request.asset_selection, partition_key=request.partition_key,
                             instance=instance, resources=resources, tags={**request.tags, TRIGGER_TAG: ON_DEMAND},
                             raise_on_error=False)  # fmt: skip
        what = f"extract {extracts or 'nothing'}" + (", unified, plans, writes" if request.tags.get(CHAIN_TAG) else "")
        if not run.success:
            done.failed.append(f"{what} (run {run.run_id})")
        say(f"{what} ({request.tags.get(REASON_TAG, '')}): run {run.run_id[:8]} {'ok' if run.success else 'FAILED'}")
        for event in run.get_asset_materialization_events():
            crm = next((c for c, key in WRITES.items() if key == event.asset_key), None)
            if crm is not None:
                done.writes[crm] = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    return done

"""``crm-pipelines sync``: one pass of the sync loop on demand (issue 14), what the daemon does after a change,
in this process: the change sensor's tick, the extract runs it asks for, then ``unified``, the plans and the
writes in one run. Real Dagster runs on the instance in ``DAGSTER_HOME``, tagged as the daemon's are, so the UI
shows them beside the automation's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.run_tags import INCREMENTAL_SYNC, KIND_TAG
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
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
    extract = build_extract_assets(settings)
    tags = {KIND_TAG: INCREMENTAL_SYNC, TRIGGER_TAG: ON_DEMAND}
    done = SyncPass()
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        requests = build_change_sensor(settings, daily_partitions(settings.extract))(context).run_requests
    say(f"changes: {len(requests)} object(s) to extract")
    for request in requests:
        keys = list(request.asset_selection or [])
        name = ", ".join(".".join(k.path) for k in keys)
        run = dg.materialize(extract, selection=keys, partition_key=request.partition_key, instance=instance,
                             resources=resources, tags={**request.tags, **tags}, raise_on_error=False)  # fmt: skip
        if not run.success:
            done.failed.append(f"extract {name} (run {run.run_id})")
        say(f"  extract {name} ({request.tags.get('crm_pipelines/reason', '')}): {'ok' if run.success else 'FAILED'}")
    chain = dg.materialize([build_unified_assets(settings), build_plan_assets(), *build_write_assets()],
                           instance=instance, resources=resources, tags=tags, raise_on_error=False)
    if not chain.success:
        done.failed.append(f"unified, plans and writes (run {chain.run_id})")
    for event in chain.get_asset_materialization_events():
        crm = next((c for c, key in WRITES.items() if key == event.asset_key), None)
        if crm is not None:
            done.writes[crm] = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    say(f"unified, plans and writes: run {chain.run_id[:8]} {'ok' if chain.success else 'FAILED'}")
    return done

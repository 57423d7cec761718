"""``crm_change_sensor``: polls each CRM cheaply for changes past each object's cursor, requests runs."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import asyncio
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.defs.run_tags import CONNECTION_TAG, INCREMENTAL_SYNC, KIND_TAG
from crm_pipelines.extract.catalog import EXTRACTED, make_source
from crm_pipelines.extract.runner import DELETIONS, INCREMENTAL
from crm_pipelines.settings import Settings
from crm_pipelines.state.cursors import get_cursor

# Deletions leave no trace in change polls (HubSpot's search skips archived records), so each object's
# deletion sweep is requested at least this often (DEL-5: archived records are kept 90 days).
DELETION_SWEEP_EVERY = timedelta(hours=1)


def build_change_sensor(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.SensorDefinition:
    objects = [
        (crm, obj)
        for crm, per in EXTRACTED.items()
        if getattr(settings.connections, crm).enabled
        for obj, partitioned in per.items()
        if partitioned
    ]

    @dg.sensor(
        name="crm_change_sensor",
        minimum_interval_seconds=settings.extract.sensor_interval_s,
        asset_selection=dg.AssetSelection.assets(*[dg.AssetKey([c, o]) for c, o in objects]),
        default_status=dg.DefaultSensorStatus.RUNNING,  # on when deployed (issue 14); the README says how to pause
        description="Requests an incremental extract of today's partition for each object that changed",
    )
    def crm_change_sensor(
        context: dg.SensorEvaluationContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> dg.SensorResult:
        engine = state.engine()
        now = datetime.now(UTC)
        today = partitions_def.get_last_partition_key()
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []

        async def poll() -> None:
            for crm in sorted({c for c, _ in objects}):
                async with crm_connections.client(crm, state, Meter()) as client:
                    for c, obj in objects:
                        if c != crm:
                            continue
                        cursor = get_cursor(engine, crm, obj, INCREMENTAL)
                        if cursor is None:
                            skipped.append(f"{crm}.{obj}: not imported yet (run the backfill first)")
                            continue
                        changed = await make_source(crm, client, obj, engine).count_window(
                            datetime.fromisoformat(cursor), now
                        )
                        swept = get_cursor(engine, crm, obj, DELETIONS)
                        sweep_due = swept is None or datetime.fromisoformat(swept) < now - DELETION_SWEEP_EVERY
                        if changed or sweep_due:
                            reason = f"{changed} changed" if changed else "deletion sweep due"
                            requests.append(
                                dg.RunRequest(
                                    # one run per cursor position: racing evaluations cannot fetch twice
                                    run_key=f"{crm}.{obj}:{cursor}:{swept}",
                                    asset_selection=[dg.AssetKey([crm, obj])],
                                    partition_key=today,
                                    tags={"crm_pipelines/reason": reason, KIND_TAG: INCREMENTAL_SYNC,
                                          CONNECTION_TAG: crm},
                                )
                            )

        asyncio.run(poll())
        for line in skipped:
            context.log.info(line)
        positions = {r.run_key: r.tags["crm_pipelines/reason"] for r in requests}
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(positions, sort_keys=True))

    return crm_change_sensor

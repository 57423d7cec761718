"""Extract assets: one per CRM object, daily partitions on modification time (thin: the work is in extract/)."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import asyncio
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.partitions import backfill_policy, daily_partitions
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.extract.catalog import EXTRACTED, make_source
from crm_pipelines.extract.runner import ExtractResult, extract
from crm_pipelines.settings import Settings

COMPLETE_CHECK = "complete"  # OPS-7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _metadata(result: ExtractResult, meter: Meter, budget_used: int | None, limit: int | None) -> dict:
    metadata: dict = {
        "records_read": result.read,
        "records_upserted": result.upserted,
        "records_deleted": result.deleted,
        "associations": result.associations,
        "api_calls": meter.count(),
        "window_start": result.start.isoformat(),
        "window_end": result.end.isoformat(),
        "seconds": round(result.seconds, 2),
    }
    if budget_used is not None and limit is not None:
        metadata["api_budget_used_24h"] = budget_used
        metadata["api_budget_left_24h"] = max(limit - budget_used, 0)
    return metadata


def build_extract_asset(crm: str, obj: str, partitioned: bool, settings: Settings) -> dg.AssetsDefinition:
    key = dg.AssetKey([crm, obj])
    first_partition_start = datetime.combine(settings.extract.start_date, datetime.min.time(), UTC)
    checks = (
        [dg.AssetCheckSpec(COMPLETE_CHECK, asset=key, description="OPS-7: the mirror holds what the CRM counts")]
        if partitioned
        else []
    )

    @dg.asset(
        key=key,
        group_name=crm,
        kinds={crm},
        partitions_def=daily_partitions(settings.extract) if partitioned else None,
        backfill_policy=backfill_policy(settings.extract) if partitioned else None,
        pool=f"{crm}_api",  # one connection's runs queue instead of fighting over its API budget
        check_specs=checks,
        description=f"{crm} {obj} as the API returns them, in the mirror table (deleted ones flagged)",
    )
    def _extract(
        context: dg.AssetExecutionContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> dg.MaterializeResult:
        now = datetime.now(UTC)
        if partitioned:
            window = context.partition_time_window
            start, end = window.start, window.end
            if start <= first_partition_start:
                start = EPOCH  # the first partition also holds everything modified before it
            # only a run of today's partition alone reads from the cursor; backfills read their whole range
            incremental = len(context.partition_keys) == 1 and end > now
        else:
            start, end, incremental = EPOCH, now + timedelta(days=1), False
        meter = Meter()

        async def run() -> ExtractResult:
            async with crm_connections.client(crm, state, meter) as client:
                source = make_source(crm, client, obj, state.engine())
                return await extract(source, state.engine(), start, end, incremental=incremental)

        result = asyncio.run(run())
        limit = crm_connections.api_call_limit(crm)
        used = state.ledger().used(crm, now.timestamp()) if limit else None
        context.log.info(
            f"{crm}.{obj}: read {result.read}, deleted {result.deleted}, {meter.count()} API calls "
            f"for {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M}"
        )
        check_results = []
        if partitioned:
            check_results.append(
                dg.AssetCheckResult(
                    check_name=COMPLETE_CHECK,
                    passed=result.complete is not False,
                    metadata={
                        "crm_count": result.crm_count if result.crm_count is not None else -1,
                        "mirror_count": result.mirror_count if result.mirror_count is not None else -1,
                    },
                )
            )
        return dg.MaterializeResult(metadata=_metadata(result, meter, used, limit), check_results=check_results)

    return _extract


def build_extract_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    enabled = {
        "hubspot": settings.connections.hubspot.enabled,
        "salesforce": settings.connections.salesforce.enabled,
        "dynamics": settings.connections.dynamics.enabled,
    }
    return [
        build_extract_asset(crm, obj, partitioned, settings)
        for crm, objects in EXTRACTED.items()
        if enabled[crm]
        for obj, partitioned in objects.items()
    ]

"""Extract assets: an asset per CRM object (thin: the work is in extract/).

A CRM's objects partitioned by modification time are one multi-asset, so one step reads them through one
connection, ``extract.objects_in_parallel`` at a time (they share the connection's rate limits and
concurrency), and each object's materialization is recorded while the others read: the API's rate limit
never idles behind Dagster's bookkeeping of thousands of daily partitions, and one object's wait for a
flaky API (a backoff, a Retry-After, a hung request) is not added to the next one's. Each object is still
its own asset, selectable alone (the change sensor requests only what changed). Small reference objects are
plain assets, read whole.
"""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import asyncio
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.crm.errors import describe_error
from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.extract.descriptions import (
    asset_tags,
    complete_description,
    partitioned_description,
    reference_description,
)
from crm_pipelines.defs.extract.metadata import (
    DayTally,
    TalliedSource,
    add_partition_metadata,
    check_metadata,
    figures_note,
    partition_metadata,
    run_metadata,
    shared_metadata,
)
from crm_pipelines.defs.extract.run_labels import label_run
from crm_pipelines.defs.extract.settings_fields import settings_fields
from crm_pipelines.defs.partitions import backfill_policy, daily_partitions
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.defs.run_tags import BULK_IMPORT, KIND_TAG
from crm_pipelines.extract.catalog import EXTRACTED, make_source
from crm_pipelines.extract.runner import ExtractResult, extract
from crm_pipelines.settings import Settings

COMPLETE_CHECK = "complete"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Extracted:
    """One object's extract: the runner's result, its API calls, and its records counted per partition."""

    result: ExtractResult
    meter: Meter
    tally: DayTally | None = None


async def _extract_one(
    crm: str, obj: str, state: StateDatabase, crm_connections: CrmConnections, window: tuple[datetime, datetime, bool],
    extra: tuple[str, ...] = (), partition_keys: Sequence[str] = (),
) -> Extracted:
    start, end, incremental = window
    meter = Meter()  # per object, so each materialization reports its own API calls
    tally = DayTally(partition_keys) if partition_keys else None
    async with crm_connections.client(crm, state, meter) as client:
        source = make_source(crm, client, obj, state.engine(), extra)
        if incremental and hasattr(source, "history"):
            source.history = True  # field change times, for the conflict rules (only a short window's records)
        counted = TalliedSource(source, tally) if tally else source
        result = await extract(counted, state.engine(), start, end, incremental=incremental)  # type: ignore[arg-type]
        return Extracted(result, meter, tally)


def _materialization(
    context: dg.AssetExecutionContext,
    crm: str,
    obj: str,
    done: Extracted,
    state: StateDatabase,
    crm_connections: CrmConnections,
    checked: bool,
) -> dg.MaterializeResult:
    """The object's materialization: one per partition of the run, each with its own figures (``metadata.py``)."""
    result, calls = done.result, done.meter.count()
    keys = list(context.partition_keys) if done.tally else []
    context.log.info(
        f"{crm}.{obj}: read {result.read}, deleted {result.deleted}, {calls} API calls "
        f"for {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M}"
    )
    key = dg.AssetKey([crm, obj])
    engine = state.engine()
    metadata = shared_metadata(engine, crm, obj, result, crm_connections.api_call_limit(crm), keys)
    if done.tally:
        per_partition = partition_metadata(keys, done.tally, result, calls)
        # A partition with no records of its own takes the zeros given to the whole run; only the others are
        # named one by one (Dagster checks each named key against the run's range, so fewer is faster).
        quiet = {name: 0 for name in per_partition[keys[0]] if name != "figures"} | {"seconds": 0.0}
        metadata |= quiet | {"figures": figures_note(keys)}
        own = {p: f for p, f in per_partition.items() if p == keys[-1] or any(f[name] for name in quiet)}
        add_partition_metadata(context, key, own)
    else:
        metadata |= run_metadata(result, calls)
    passed, evidence = result.complete is not False, check_metadata(result, keys)
    checks = [dg.AssetCheckResult(asset_key=key, check_name=COMPLETE_CHECK, passed=passed, metadata=evidence)]
    if not checked and context.run.tags.get(KIND_TAG) == BULK_IMPORT:
        # the bulk import leaves the check out of its plan (backfill.py) and records its one evaluation here
        context.log_event(dg.AssetCheckEvaluation(key, COMPLETE_CHECK, passed, metadata=evidence))
    return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks if checked else [])


def _read_in_background(
    crm: str,
    objects: list[str],
    state: StateDatabase,
    crm_connections: CrmConnections,
    window: tuple[datetime, datetime, bool],
    in_parallel: int = 1,
    extra: dict[str, tuple[str, ...]] | None = None,
    partition_keys: Sequence[str] = (),
) -> Iterator[tuple[str, Extracted | Exception]]:
    """Each object's outcome as soon as it is read and written, while the thread reads the others,
    ``in_parallel`` at a time (in the order given). ``extra``: object -> fields the settings name on it."""
    done: queue.Queue = queue.Queue()

    async def read_all() -> None:
        gate = asyncio.Semaphore(max(1, in_parallel))

        async def read_one(obj: str) -> None:
            async with gate:
                try:
                    outcome: Extracted | Exception = await _extract_one(
                        crm, obj, state, crm_connections, window, (extra or {}).get(obj, ()), partition_keys
                    )
                except Exception as error:  # one object failing leaves the others to be read
                    outcome = error
            done.put((obj, outcome))

        await asyncio.gather(*(read_one(obj) for obj in objects))

    def run() -> None:
        try:
            asyncio.run(read_all())
        finally:
            done.put(None)  # the end, however it came

    # A daemon: when the run is terminated, its reads stop with the process (what was written stays written).
    threading.Thread(target=run, name=f"{crm}-extract", daemon=True).start()
    while (item := done.get()) is not None:
        yield item


def build_crm_extract(crm: str, objects: list[str], settings: Settings) -> dg.AssetsDefinition:
    """The CRM's partitioned objects: daily partitions on modification time, one step per run."""
    partitions = daily_partitions(settings.extract)
    extra = {obj: fields for (of, obj), fields in settings_fields(settings).items() if of == crm}
    first_partition_start = datetime.combine(settings.extract.start_date, datetime.min.time(), UTC)

    @dg.multi_asset(
        name=f"{crm}_extract",
        specs=[
            dg.AssetSpec(
                [crm, obj],
                group_name=crm,
                kinds={crm},
                tags=asset_tags(crm),
                partitions_def=partitions,
                description=partitioned_description(
                    crm, obj, settings.extract.start_date.isoformat(), settings.extract.partitions_per_run
                ),
            )
            for obj in objects
        ],
        check_specs=[
            dg.AssetCheckSpec(COMPLETE_CHECK, asset=[crm, obj], description=complete_description(crm))
            for obj in objects
        ],
        can_subset=True,
        backfill_policy=backfill_policy(settings.extract),
        pool=f"{crm}_api",  # one connection's runs queue instead of fighting over its API budget
    )
    def _extract(
        context: dg.AssetExecutionContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> Iterator[dg.MaterializeResult]:
        label_run(context)
        window = context.partition_time_window
        start, end = window.start, window.end
        if start <= first_partition_start:
            start = EPOCH  # the first partition also holds everything modified before it
        # only a run of today's partition alone reads from the cursor; backfills read their whole range
        incremental = len(context.partition_keys) == 1 and end > datetime.now(UTC)
        selected = [obj for obj in objects if dg.AssetKey([crm, obj]) in context.selected_asset_keys]
        failed: dict[str, Exception] = {}
        read: set[str] = set()
        reads = _read_in_background(
            crm, selected, state, crm_connections, (start, end, incremental), settings.extract.objects_in_parallel,
            extra, context.partition_keys,
        )
        for obj, outcome in reads:
            if isinstance(outcome, Exception):
                failed[obj] = outcome
                continue
            read.add(obj)
            checked = dg.AssetCheckKey(dg.AssetKey([crm, obj]), COMPLETE_CHECK) in context.selected_asset_check_keys
            yield _materialization(context, crm, obj, outcome, state, crm_connections, checked)
        unread = [obj for obj in selected if obj not in read]
        if unread:  # after the others are recorded: the step (and its run) fails, naming what to re-run
            first = failed.get(unread[0])
            raise RuntimeError(
                f"{crm}: {', '.join(unread)} not extracted"
                + (f"; {unread[0]}: {describe_error(first)}" if first else "")
            ) from first

    return _extract


def build_reference_asset(crm: str, obj: str) -> dg.AssetsDefinition:
    """Small reference data (pipelines, owners, users, record types): read whole each run, unpartitioned."""

    @dg.asset(
        key=[crm, obj],
        group_name=crm,
        kinds={crm},
        tags=asset_tags(crm),
        pool=f"{crm}_api",
        description=reference_description(crm, obj),
    )
    def _extract(
        context: dg.AssetExecutionContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> dg.MaterializeResult:
        label_run(context)
        window = (EPOCH, datetime.now(UTC) + timedelta(days=1), False)
        done = asyncio.run(_extract_one(crm, obj, state, crm_connections, window))
        return _materialization(context, crm, obj, done, state, crm_connections, checked=False)

    return _extract


def build_extract_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    enabled = {
        "hubspot": settings.connections.hubspot.enabled,
        "salesforce": settings.connections.salesforce.enabled,
        "dynamics": settings.connections.dynamics.enabled,
    }
    assets = []
    for crm, objects in EXTRACTED.items():
        if not enabled[crm]:
            continue
        partitioned = [obj for obj, is_partitioned in objects.items() if is_partitioned]
        if partitioned:
            assets.append(build_crm_extract(crm, partitioned, settings))
        assets.extend(build_reference_asset(crm, obj) for obj, is_partitioned in objects.items() if not is_partitioned)
    return assets

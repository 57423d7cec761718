"""Extract assets: an asset per CRM object (thin: the work is in extract/).

A CRM's objects partitioned by modification time are one multi-asset, so one step reads them through one
connection, ``extract.objects_in_parallel`` at a time (they share the connection's rate limits and
concurrency), and each object's materialization is recorded while the others read: the API's rate limit
never idles behind Dagster's bookkeeping of thousands of daily partitions, and one object's wait for a
flaky API (a backoff, a Retry-After, a hung request) is not added to the next one's. Each object is still
its own asset, selectable alone (the change sensor requests only what changed). Small reference objects are
plain assets, read whole. A sync run, whose steps share its process, reads its CRMs side by side (``reads.py``).
"""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.crm.errors import describe_error
from crm_pipelines.defs.extract.descriptions import (
    asset_tags,
    complete_description,
    partitioned_description,
    reference_description,
)
from crm_pipelines.defs.extract.metadata import (
    add_partition_metadata,
    check_metadata,
    figures_note,
    partition_metadata,
    run_metadata,
    shared_metadata,
)
from crm_pipelines.defs.extract.reads import BackgroundReads, Extracted, ReadPlan, SideBySide, extract_one
from crm_pipelines.defs.extract.run_labels import label_run
from crm_pipelines.defs.extract.settings_fields import settings_fields
from crm_pipelines.defs.partitions import backfill_policy, daily_partitions
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.defs.run_tags import BULK_IMPORT, KIND_TAG
from crm_pipelines.extract.catalog import EXTRACTED
from crm_pipelines.settings import Settings

COMPLETE_CHECK = "complete"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _steps_share_this_process(context: dg.AssetExecutionContext) -> bool:
    """Whether the run's steps all run in this process, one after another: the sync loop's runs
    (``change_sensor.IN_PROCESS``), ``materialize`` and ``crm-pipelines sync``."""
    if context.job_def.executor_def.name in ("in_process", "execute_in_process_executor"):
        return True
    execution = context.run.run_config.get("execution") or {}
    return bool(isinstance(execution, dict) and (execution.get("config") or {}).get("in_process"))


def _side_by_side_plans(context: dg.AssetExecutionContext, own: ReadPlan,
                        together: Mapping[str, list[str]], extra: Mapping[str, Mapping[str, tuple[str, ...]]],
                        in_parallel: int) -> list[ReadPlan]:
    """Each CRM's reads in this run, ``own`` among them: the objects the run selects of every CRM whose step
    it executes."""
    selection = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    steps = context.run.step_keys_to_execute
    plans = [own]
    for crm, objects in together.items():
        if crm == own.crm or (steps is not None and f"{crm}_extract" not in steps):
            continue
        chosen = tuple(o for o in objects if dg.AssetKey([crm, o]) in selection)
        plans.append(ReadPlan(crm, chosen, own.window, own.partition_keys, in_parallel, extra.get(crm)))
    return plans


def build_crm_extract(crm: str, objects: list[str], settings: Settings,
                      together: tuple[SideBySide, Mapping[str, list[str]]] | None = None) -> dg.AssetsDefinition:
    """The CRM's partitioned objects: daily partitions on modification time, one step per run. ``together``:
    where the CRMs' steps of a run share their reads (``reads.py``), and every CRM's partitioned objects."""
    partitions = daily_partitions(settings.extract)
    extra_by_crm: dict[str, dict[str, tuple[str, ...]]] = {}
    for (of, obj), fields in settings_fields(settings).items():
        extra_by_crm.setdefault(of, {})[obj] = fields
    in_parallel = settings.extract.objects_in_parallel
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
        plan = ReadPlan(crm, tuple(selected), (start, end, incremental), tuple(context.partition_keys), in_parallel,
                        extra_by_crm.get(crm))  # fmt: skip
        if together is not None and incremental and _steps_share_this_process(context):
            side, partitioned = together
            plans = _side_by_side_plans(context, plan, partitioned, extra_by_crm, in_parallel)
            reads = side.reads(context.run.run_id, plans, crm, state, crm_connections)
        else:
            reads = BackgroundReads(plan, state, crm_connections)
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
        done = extract_one(ReadPlan(crm, (obj,), window, ()), obj, state, crm_connections)
        return _materialization(context, crm, obj, done, state, crm_connections, checked=False)

    return _extract


def build_extract_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    enabled = {
        "hubspot": settings.connections.hubspot.enabled,
        "salesforce": settings.connections.salesforce.enabled,
        "dynamics": settings.connections.dynamics.enabled,
    }
    partitioned = {crm: [obj for obj, is_partitioned in objects.items() if is_partitioned]
                   for crm, objects in EXTRACTED.items() if enabled[crm]}  # fmt: skip
    together = (SideBySide(), {crm: objects for crm, objects in partitioned.items() if objects})
    assets = []
    for crm, objects in EXTRACTED.items():
        if not enabled[crm]:
            continue
        if partitioned[crm]:
            assets.append(build_crm_extract(crm, partitioned[crm], settings, together))
        assets.extend(build_reference_asset(crm, obj) for obj, is_partitioned in objects.items() if not is_partitioned)
    return assets

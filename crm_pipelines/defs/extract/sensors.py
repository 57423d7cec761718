"""``crm_change_sensor``'s poll: each CRM asked cheaply for changes past each object's cursor, one extract
request per object that changed (or whose deletion sweep is due). ``defs/sync/change_sensor.py`` groups them
into the sync loop's runs; ``build_change_sensor`` requests them one by one (the tests' and benches' view)."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from crm_pipelines import catalog
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
REASON_TAG = "crm_pipelines/reason"


@dataclass
class ChangePoll:
    """One poll: an extract request per object to read (its ``run_key`` is the object's cursor position), and
    the objects not imported yet (no cursor: the bulk import has not read today)."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    not_imported: list[tuple[str, str]] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)  # per CRM: what the poll cost


def polled_objects(settings: Settings) -> list[tuple[str, str]]:
    """(CRM, object) of every partitioned object of the enabled connections: what a poll asks about."""
    return [(crm, obj) for crm, per in EXTRACTED.items() if getattr(settings.connections, crm).enabled
            for obj, partitioned in per.items() if partitioned]  # fmt: skip


def poll_changes(settings: Settings, today: str, state: StateDatabase, crm_connections: CrmConnections,
                 not_before: datetime | None = None) -> ChangePoll:
    """Ask each enabled CRM what changed since each object's cursor, or since ``not_before`` when that is later
    (a run reading from the cursor is under way): a count per object (``_counts``)."""
    engine = state.engine()
    now = datetime.now(UTC)
    objects = polled_objects(settings)
    found = ChangePoll()

    def windows_of(crm: str) -> dict[str, tuple[datetime, datetime]]:
        windows = {}
        for obj in [o for c, o in objects if c == crm]:
            cursor = get_cursor(engine, crm, obj, INCREMENTAL)
            if cursor is None:
                found.not_imported.append((crm, obj))
            else:
                start = datetime.fromisoformat(cursor)
                start = max(start, not_before) if not_before else start
                windows[obj] = (_stamp_floor(start, catalog.get(crm, obj).modified_step), now)
        return windows

    async def counts_of(crm: str, windows: dict[str, tuple[datetime, datetime]], meter: Meter) -> dict[str, int | None]:
        async with crm_connections.client(crm, state, meter) as client:
            return await _counts(crm, client, windows, engine)

    async def poll() -> None:
        crms = sorted({c for c, _ in objects})
        windows = {crm: windows_of(crm) for crm in crms}
        meters = {crm: Meter() for crm in crms}
        asked = [crm for crm in crms if windows[crm]]
        # the CRMs side by side: a tick's time is the slowest CRM's answer, not the sum (it adds to every change's
        # latency); each stays within its own rate limits
        answers = await asyncio.gather(*(counts_of(crm, windows[crm], meters[crm]) for crm in asked))
        for crm, counts in zip(asked, answers, strict=True):
            for obj, (start, _) in windows[crm].items():
                swept = get_cursor(engine, crm, obj, DELETIONS)
                sweep_due = swept is None or datetime.fromisoformat(swept) < now - DELETION_SWEEP_EVERY
                if counts[obj] or sweep_due:
                    reason = f"{counts[obj]} changed" if counts[obj] else "deletion sweep due"
                    found.requests.append(dg.RunRequest(
                        # one run per cursor position: racing evaluations cannot fetch twice
                        run_key=f"{crm}.{obj}:{start.isoformat()}:{swept}", asset_selection=[dg.AssetKey([crm, obj])],
                        partition_key=today,
                        tags={REASON_TAG: reason, KIND_TAG: INCREMENTAL_SYNC, CONNECTION_TAG: crm}))  # fmt: skip
            found.api_calls[crm] = meters[crm].count()

    asyncio.run(poll())
    return found


def _stamp_floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` cut to the CRM's stamp resolution: a change made after it within the same step (a second, for
    Dataverse) is stamped before it, and a poll from ``moment`` itself would not count it. Counting the few
    changes of that step again costs at most one extract run (the run moves the cursor past them)."""
    return moment - (moment - datetime(1970, 1, 1, tzinfo=UTC)) % step


async def _counts(crm: str, client: Any, windows: dict[str, tuple[datetime, datetime]],
                  engine: Engine) -> dict[str, int | None]:
    """Each object's changes in its window: in one call per five objects where the API batches counts
    (Salesforce's composite resource counts as one call against the daily allocation, OPS-2), else one each."""
    if len(windows) > 1 and hasattr(client, "count_windows"):
        return dict(await client.count_windows(windows))
    counts = await asyncio.gather(*(make_source(crm, client, obj, engine).count_window(start, end)
                                    for obj, (start, end) in windows.items()))  # fmt: skip
    return dict(zip(windows, counts, strict=True))


def build_change_sensor(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.SensorDefinition:
    """A sensor requesting each changed object's extract on its own (today's partition)."""
    objects = polled_objects(settings)

    @dg.sensor(
        name="crm_change_sensor",
        minimum_interval_seconds=settings.extract.sensor_interval_s,
        asset_selection=dg.AssetSelection.assets(*[dg.AssetKey([c, o]) for c, o in objects]),
        description="Requests an incremental extract of today's partition for each object that changed",
    )
    def crm_change_sensor(
        context: dg.SensorEvaluationContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> dg.SensorResult:
        found = poll_changes(settings, partitions_def.get_last_partition_key(), state, crm_connections)
        for crm, obj in found.not_imported:
            context.log.info(f"{crm}.{obj}: not imported yet (run the backfill first)")
        positions = {r.run_key: r.tags[REASON_TAG] for r in found.requests}
        return dg.SensorResult(run_requests=found.requests, cursor=json.dumps(positions, sort_keys=True))

    return crm_change_sensor

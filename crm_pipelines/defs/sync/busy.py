"""Which connections a bulk import (or any other run reading them outside the sync loop) is busy with, from
the Dagster instance: runs in progress whose selection holds one of a CRM's extract assets, and backfills not
finished. The sync loop keeps such a CRM out of its runs (issue 14): its extract waits for the import's run in
its own run, and nothing is written to it until its import is done."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.run_coordinator import QueuedRunCoordinator

from crm_pipelines.defs.run_tags import CHAIN_TAG, INCREMENTAL_SYNC, KIND_TAG

IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]  # fmt: skip


def busy_connections(instance: dg.DagsterInstance, extracts: Mapping[str, Set[dg.AssetKey]]) -> set[str]:
    """CRMs (keys of ``extracts``, each with its extract assets) that a run or backfill outside the loop reads."""
    busy: set[str] = set()

    def reads(selection: Iterable[dg.AssetKey] | None) -> None:
        chosen = set(selection or ())
        busy.update(crm for crm, keys in extracts.items() if chosen & keys)

    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        # the loop's own runs (its changes, the chain, the sweep) are not imports: never busy because of them
        if run.tags.get(KIND_TAG) != INCREMENTAL_SYNC and run.tags.get(CHAIN_TAG) != "true":
            reads(run.asset_selection)
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        reads(backfill.asset_selection)
    return busy


@dataclass(frozen=True)
class ChainRuns:
    """The chain's runs in progress: one waiting to start (queued or launching: its extracts will read every
    change made before then), and since when one has been running (its extracts may miss what changed after)."""

    waiting: bool
    running_since: datetime | None


def chain_runs(instance: dg.DagsterInstance) -> ChainRuns:
    records = instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS, tags={CHAIN_TAG: "true"}))
    started = [r.start_time for r in records if r.dagster_run.status != dg.DagsterRunStatus.STARTING
               and r.start_time is not None]  # fmt: skip
    return ChainRuns(waiting=len(started) < len(records),
                     running_since=datetime.fromtimestamp(min(started), UTC) if started else None)  # fmt: skip


def chains_wait_their_turn(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's run queue holds a chain run until the one running ends (``ONE_CHAIN_AT_A_TIME``
    among its run tag limits: ``concurrency.runs.tag_concurrency_limits``, as the project's dagster.yaml sets):
    only then may the loop queue the next chain run while one runs."""
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):  # without a queue, a run launches at once
        return False
    queue = instance.get_concurrency_config().run_queue_config
    return queue is not None and any(
        limit.get("key") == CHAIN_TAG and limit.get("value", "true") == "true" and limit.get("limit") == 1
        for limit in queue.tag_concurrency_limits)  # fmt: skip


def chain_in_progress(instance: dg.DagsterInstance) -> bool:
    """Whether a run of the chain (``unified``, plans, writes) is queued or running: the loop starts one at a time."""
    return bool(instance.get_run_ids(dg.RunsFilter(statuses=IN_PROGRESS, tags={CHAIN_TAG: "true"}), limit=1))

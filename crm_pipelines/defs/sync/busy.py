"""Which connections a bulk import (or any other run reading them outside the sync loop) is busy with, from
the Dagster instance: runs in progress whose selection holds one of a CRM's extract assets, and backfills not
finished. The sync loop keeps such a CRM out of its runs (issue 14): its extract waits for the import's run in
its own run, and nothing is written to it until its import is done."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

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


def chain_in_progress(instance: dg.DagsterInstance) -> bool:
    """Whether a run of the chain (``unified``, plans, writes) is queued or running: the loop starts one at a time."""
    return bool(instance.get_run_ids(dg.RunsFilter(statuses=IN_PROGRESS, tags={CHAIN_TAG: "true"}), limit=1))

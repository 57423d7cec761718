"""Run tags for extract runs launched by hand (issue 15): the UI's Materialize button, a backfill launched from
the asset graph, ``dagster asset materialize``.

Runs our own code launches carry ``crm_pipelines/kind`` and ``crm_pipelines/connection`` from the start
(``defs/run_tags.py``). Dagster 1.13 gives an asset definition no way to add run tags to runs the UI launches:
``AssetSpec(tags=...)`` labels the asset in the graph and catalog only, ``op_tags`` tag the step, run tags
belong to jobs, schedules and sensors, a ``BackfillPolicy`` has none, and a UI backfill's runs get the tags typed
into its launch dialog (a pull request to pass asset tags on, dagster-io/dagster#33382, was closed unmerged).
So the extract step labels its own run when it starts, with ``DagsterInstance.add_run_tags``: the Runs page
then says what each hand-launched run was, and its tag filters find it. A queued run shows no label until its
first extract step starts.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from dagster._core.storage.tags import BACKFILL_ID_TAG

from crm_pipelines import catalog
from crm_pipelines.defs.run_tags import BULK_IMPORT, CONNECTION_TAG, KIND_TAG, MANUAL, connection_tags


def labels_for(have: Mapping[str, str], selection: set[dg.AssetKey], partitions: int) -> dict[str, str]:
    """The tags a run with tags ``have`` lacks: its kind (a backfill or a run over several days is a bulk import,
    anything else by hand) and the CRMs its selection reads. Tags already set (by our code or the user) stay."""
    wanted: dict[str, str] = {}
    if KIND_TAG not in have:
        wanted[KIND_TAG] = BULK_IMPORT if BACKFILL_ID_TAG in have or partitions > 1 else MANUAL
    crms = {key.path[0] for key in selection if key.path and key.path[0] in catalog.CRMS}
    if CONNECTION_TAG not in have and crms:
        wanted.update(connection_tags(crms))
    return wanted


def label_run(context: dg.AssetExecutionContext) -> None:
    """Add the missing labels to this step's run. Every step of a run computes the same ones (from the run's
    whole selection), so steps in parallel processes agree."""
    run = context.run
    selection = set(run.asset_selection or context.selected_asset_keys)
    partitions = len(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else 0
    wanted = labels_for(run.tags, selection, partitions)
    if wanted:
        context.instance.add_run_tags(run.run_id, wanted)

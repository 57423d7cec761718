"""The single Dagster entry point: loads every definition under `crm_pipelines/defs/`.

Cross-cutting policy (automation sensors, freshness) is applied here, in one place; the definitions
themselves live in the `defs/` folder, and nothing there does I/O at import time.
"""

from pathlib import Path

import dagster as dg

from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.executors import step_executor

# the run worker and step processes load this module, and they store each run's materializations
batch_partition_events()


# Where each run's steps execute: in their own processes by default (the CRMs' steps side by side, the
# `<crm>_api` pools keeping one CRM's in line), or in pods, containers or Celery workers as
# $CRM_PIPELINES_EXECUTOR says (`crm_pipelines/executors.py`, issue 15). The sync loop's small runs ask for
# `in_process: true` (run config) under every kind: their steps follow one another anyway.
STEP_EXECUTOR = step_executor()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=STEP_EXECUTOR),
    )

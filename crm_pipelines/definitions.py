"""The single Dagster entry point: loads every definition under `crm_pipelines/defs/`.

Cross-cutting policy (automation sensors, freshness) is applied here, in one place; the definitions
themselves live in the `defs/` folder, and nothing there does I/O at import time.
"""

from pathlib import Path

import dagster as dg

from crm_pipelines.dagster_events import batch_partition_events

# the run worker and step processes load this module, and they store each run's materializations
batch_partition_events()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)

"""The single Dagster entry point: loads every definition under `crm_pipelines/defs/`.

Cross-cutting policy (automation sensors, freshness) is applied here, in one place; the definitions
themselves live in the `defs/` folder, and nothing there does I/O at import time.
"""

from pathlib import Path

import dagster as dg

from crm_pipelines.dagster_events import batch_partition_events

# the run worker and step processes load this module, and they store each run's materializations
batch_partition_events()


# Each step of a run gets its own process (the CRMs' steps run side by side; the `<crm>_api` pools keep
# one CRM's in line). Forked from a server that has imported the project already, a step starts in about
# a second instead of the ~2 s a fresh interpreter takes (measured), which a backfill pays per step.
# The sync loop's small runs ask for `in_process: true` (run config): their steps follow one another anyway
# (extract, unified, plans, writes), so a process per step would only add its start to every change's latency.
def _steps(config: dict) -> dict:
    if config["in_process"]:
        return {"in_process": {}}
    return {"multiprocess": {"start_method": {"forkserver": {"preload_modules": ["crm_pipelines.definitions"]}}}}


STEP_EXECUTOR = dg.multi_or_in_process_executor.configured(
    _steps, name="crm_pipelines_executor", config_schema={"in_process": dg.Field(bool, default_value=False)}
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=STEP_EXECUTOR),
    )

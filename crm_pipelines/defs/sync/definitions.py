"""The sync loop's definitions (issue 14): ``crm_change_sensor`` (``change_sensor.py``) runs what a change needs,
``sync_job`` runs the whole chain on demand, ``crm_sweep_schedule`` runs it hourly as the sweep, and
``crm_sync_automation`` evaluates the whole-table checks' sweep conditions. All are on when deployed; pause them
on the UI's Automation page or with ``dagster sensor stop`` / ``dagster schedule stop``."""

from __future__ import annotations

import os

import dagster as dg

from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.run_tags import KIND_TAG, SWEEP
from crm_pipelines.defs.sync.change_sensor import build_sync_sensor
from crm_pipelines.defs.sync.sweep_schedule import build_sweep_schedule
from crm_pipelines.defs.sync.sync_job import build_sync_job
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SETTINGS_ENV

SYNC_AUTOMATION = "crm_sync_automation"


@dg.definitions
def sync_definitions() -> dg.Definitions:
    settings = load_settings(os.environ.get(SETTINGS_ENV))
    partitions = daily_partitions(settings.extract)
    job = build_sync_job(settings, partitions)
    return dg.Definitions(
        jobs=[job],
        schedules=[build_sweep_schedule(partitions, settings)],
        sensors=[
            build_sync_sensor(settings, partitions),
            dg.AutomationConditionSensorDefinition(
                SYNC_AUTOMATION, target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
                run_tags={KIND_TAG: SWEEP},
                description=with_rule_refs("Runs the checks that read whole tables (incremental = full on a "
                                           "sample, ROLL-1 drift) on their hourly sweep condition")),
        ],
    )

"""The sync loop's automation (issue 14): after the change sensor's extracts, ``unified``, the plans and the
writes follow by themselves, each when what it reads was updated (their ``AUTOMATION`` condition), evaluated
by this sensor. It is on when deployed; pause it (and ``crm_change_sensor``) on the UI's Automation page or
with ``dagster sensor stop``."""

import dagster as dg

from crm_pipelines.defs.run_tags import INCREMENTAL_SYNC, KIND_TAG

SYNC_AUTOMATION = "crm_sync_automation"
# Dagster's default is 30 s. An evaluation reads only the instance (no CRM API call), and every change waits for
# the next one after its extract before the chain runs, so the interval adds to each change's latency
AUTOMATION_INTERVAL_S = 10


@dg.definitions
def sync_definitions() -> dg.Definitions:
    return dg.Definitions(sensors=[dg.AutomationConditionSensorDefinition(
        SYNC_AUTOMATION, target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_S, run_tags={KIND_TAG: INCREMENTAL_SYNC},
        description="Runs unified, the plans and the writes after what each reads was updated (issue 14)")])

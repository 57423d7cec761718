"""When the checks that read whole tables run: once an hour, never inside the incremental runs that carry a
change to the other CRMs (OPS-1's latency). A check with
its own automation condition does not ride along with its asset's runs (Dagster schedules it by the
condition alone), so these checks cost nothing on the sync path. To run one now: the asset's *Checks* tab
in the UI, *Execute*."""

import dagster as dg

SWEEP_CRON = "0 * * * *"
SWEEP = dg.AutomationCondition.cron_tick_passed(SWEEP_CRON)

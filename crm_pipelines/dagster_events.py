"""Dagster's own switches for runs over many partitions (a bulk import is thousands of daily ones).

Dagster records a materialization per partition. Unbatched, a run over 1,000 daily partitions of twelve
assets stores 12,000 of them one round trip at a time, and plans as many the same way, so a backfill from
2019 spends more time in the event log than reading the CRMs (measured on PostgreSQL, 2,887 partitions of
a small universe: still running after 20 minutes, against 51 s with these set). With them, a run stores its
materializations in batches (one insert per 1,000 on PostgreSQL storage) and plans each asset's range as
one event. Dagster's stated trade-off: the partitions of a *failed* run show as missing rather than
failed; the run and its backfill still show failed, and relaunching the backfill redoes them.

Run creation (the daemon, the webserver) reads the planning switch in its own process, so a deployment
exports both in its environment (README); the code location sets them for the processes it runs in.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

PARTITION_EVENT_SETTINGS = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


def batch_partition_events(environ: MutableMapping[str, str] = os.environ) -> None:
    """Turn both on unless the deployment chose otherwise."""
    for name, value in PARTITION_EVENT_SETTINGS.items():
        environ.setdefault(name, value)

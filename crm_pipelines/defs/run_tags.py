"""Tags every run of the sync carries, so the runs list says what each is and which CRM it talks to
(issue 14): filter on ``crm_pipelines/kind`` or ``crm_pipelines/connection`` in the UI's Runs page."""

from collections.abc import Iterable

KIND_TAG = "crm_pipelines/kind"
CONNECTION_TAG = "crm_pipelines/connection"
CHAIN_TAG = "crm_pipelines/chain"  # "true" on runs that carry unified, the plans and the writes
# the run queue's rule that holds a chain run while another one runs (dagster.yaml's concurrency.runs)
ONE_CHAIN_AT_A_TIME = {"key": CHAIN_TAG, "value": "true", "limit": 1}
# Dagster's run queue and pools serve higher priorities first: a sync's steps go before the bulk import's
# steps queued for the same connection (they wait at most for the import step in progress)
PRIORITY_TAG = "dagster/priority"
SYNC_PRIORITY = "10"

BULK_IMPORT = "bulk_import"  # the initial import (a backfill of the daily partitions)
INCREMENTAL_SYNC = "incremental_sync"  # the change sensor's runs: extracts of what changed and what follows
SWEEP = "sweep"  # the scheduled sweep: every object's deletions and archived records, retries that came due
MANUAL = "manual"  # an extract launched by hand, outside a backfill: one partition, or the reference objects

SYNC_RUN_TAGS = {KIND_TAG: INCREMENTAL_SYNC, PRIORITY_TAG: SYNC_PRIORITY}  # every run of the sync loop


def connection_tags(crms: Iterable[str]) -> dict[str, str]:
    """The connection tag of a run touching ``crms``: their names, joined by commas."""
    return {CONNECTION_TAG: ",".join(sorted(set(crms)))}

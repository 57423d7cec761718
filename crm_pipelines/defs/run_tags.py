"""Tags every run of the sync carries, so the runs list says what each is and which CRM it talks to
(issue 14): filter on ``crm_pipelines/kind`` or ``crm_pipelines/connection`` in the UI's Runs page."""

from collections.abc import Iterable

KIND_TAG = "crm_pipelines/kind"
CONNECTION_TAG = "crm_pipelines/connection"

BULK_IMPORT = "bulk_import"  # the initial import (a backfill of the daily partitions)
INCREMENTAL_SYNC = "incremental_sync"  # the change sensor's extracts and what follows them by itself


def connection_tags(crms: Iterable[str]) -> dict[str, str]:
    """The connection tag of a run touching ``crms``: their names, joined by commas."""
    return {CONNECTION_TAG: ",".join(sorted(set(crms)))}

"""OPS-1: a sync run reads the CRMs that changed side by side. Its steps run in one process, one after another
(``executors.py``); the first extract step starts every CRM's reads (``defs/extract/reads.py``), so a change's
latency holds the slowest API's wait, not the sum of the three."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.state import mirror
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_sync_loop import EDIT, _admin
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

CONTACTS = {"hubspot": "contacts", "salesforce": "Contact", "dynamics": "contacts"}
LATENCY_MS = 400  # every API call of the three answers this late, as a distant or busy API does


def _step_times(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[float]:
    """When the run's extract steps recorded events of ``kind`` (seconds since the epoch)."""
    records = instance.get_records_for_run(run_id, of_type=kind).records
    return [r.event_log_entry.timestamp for r in records if (r.event_log_entry.step_key or "").endswith("_extract")]


def test_ops1_a_sync_runs_crms_are_read_side_by_side(
    three_sandbox_runs: Callable[..., SandboxRuns], three_sandboxes: RunningSandbox
) -> None:
    runs = three_sandbox_runs(run_unified=False)  # the bulk import: the cursors a sync run reads from
    edited = {}
    for crm, obj in CONTACTS.items():
        records = mirror.read_records(runs.engine, crm, obj)
        record = str(records.loc[~records["deleted"], "id"].iloc[0])
        path, body = EDIT[crm](record, "Sidebyside")
        with _ui(three_sandboxes, crm) as ui:
            ui.patch(path, json=body).raise_for_status()
        edited[crm] = record
    for crm in CONTACTS:
        with _admin(three_sandboxes, crm) as admin:
            admin.put("/faults", json={"latency_ms": LATENCY_MS}).raise_for_status()

    today = daily_partitions(runs.settings.extract).get_last_partition_key()
    result = dg.materialize(runs.extract, selection=[dg.AssetKey([c, o]) for c, o in CONTACTS.items()],
                            partition_key=today, instance=runs.instance, resources=runs.resources)  # fmt: skip
    assert result.success

    for crm, obj in CONTACTS.items():  # each step recorded its own CRM's read, with the edit in the mirror
        records = mirror.read_records(runs.engine, crm, obj).set_index("id")
        name = {"hubspot": "firstname", "salesforce": "FirstName", "dynamics": "firstname"}[crm]
        assert records.loc[edited[crm], name] == "Sidebyside"
    reads = {e.asset_key.path[0]: e.materialization.metadata["seconds"].value
             for e in result.get_asset_materialization_events()}  # fmt: skip
    assert set(reads) == set(CONTACTS) and all(s >= LATENCY_MS / 1000 for s in reads.values())
    began = min(_step_times(runs.instance, result.run_id, dg.DagsterEventType.STEP_START))
    ended = max(_step_times(runs.instance, result.run_id, dg.DagsterEventType.STEP_SUCCESS))
    # one after another, the steps would take at least the three reads' sum; side by side, about the longest
    assert ended - began < sum(reads.values()) - min(reads.values()) / 2, (ended - began, reads)

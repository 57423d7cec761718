"""OPS-2 / issue 14: what the sync loop's change poll costs each CRM's daily budget. One count call per HubSpot
and Dataverse object, and one call per five Salesforce objects (the composite resource counts as one call
against Salesforce's daily allocation): 2 for its six polled objects instead of 6."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from crm_pipelines.defs.extract.sensors import poll_changes, polled_objects
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.extract.runner import INCREMENTAL
from crm_pipelines.state import mirror
from crm_pipelines.state.cursors import set_cursor
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_unified_incremental import _ui


def test_ops2_a_change_poll_costs_one_call_per_object_and_one_per_five_salesforce_objects(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    runs = three_sandbox_runs(run_unified=False)
    polled = polled_objects(runs.settings)
    assert sum(c == "salesforce" for c, _ in polled) == 6
    today = daily_partitions(runs.settings.extract).get_last_partition_key()
    found = poll_changes(runs.settings, today, runs.resources["state"], runs.resources["crm_connections"])
    assert found.requests == [] and found.not_imported == []  # nothing changed since the import
    assert found.api_calls == {"hubspot": sum(c == "hubspot" for c, _ in polled), "salesforce": 2,
                               "dynamics": sum(c == "dynamics" for c, _ in polled)}  # fmt: skip


def test_ops7_a_dynamics_change_stamped_before_the_cursor_within_its_second_is_still_found(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    """Dataverse stamps ``modifiedon`` in whole seconds: a change made half a second after the cursor (an extract
    that began earlier in that second) is stamped before the cursor. The poll counts from the cursor's whole
    second, so the change is found, and the extract it asks for reads it."""
    runs = three_sandbox_runs(run_unified=False)
    contact = str(mirror.read_records(runs.engine, "dynamics", "contacts")["id"].iloc[0])
    second = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    with _ui(runs.sandbox, "dynamics") as ui:
        ui.patch(f"/contacts/{contact}", params={"at": second.isoformat()},
                 json={"jobtitle": "Changed in the cursor's second"}).raise_for_status()
    set_cursor(runs.engine, "dynamics", "contacts", INCREMENTAL, (second + timedelta(milliseconds=500)).isoformat())
    today = daily_partitions(runs.settings.extract).get_last_partition_key()
    found = poll_changes(runs.settings, today, runs.resources["state"], runs.resources["crm_connections"])
    assert [r.asset_selection[0].path for r in found.requests] == [["dynamics", "contacts"]]

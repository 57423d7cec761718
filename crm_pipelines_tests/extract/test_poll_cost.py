"""OPS-2 / issue 14: what the sync loop's change poll costs each CRM's daily budget. One count call per HubSpot
and Dataverse object, and one call per five Salesforce objects (the composite resource counts as one call
against Salesforce's daily allocation): 2 for its six polled objects instead of 6."""

from __future__ import annotations

from collections.abc import Callable

from crm_pipelines.defs.extract.sensors import poll_changes, polled_objects
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines_tests.extract.conftest import SandboxRuns


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

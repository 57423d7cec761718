"""The words the Dagster UI shows on every extract asset and check (issue 15): what each reads, through which
API, how its partitions work, where its figures are, and the rules it serves.

Rule IDs are cited with the section of ``docs/RULES.md`` that explains them (``rules_doc.rule_refs``).

Owners: none are set. Dagster's owners are people (an email) or teams (``team:<name>``) who answer for an
asset; the settings have no key that names them, and a placeholder such as ``team:revops`` would point users at
a team that does not exist. A deployment that wants owners would add a settings key for them (see the report of
issue 15); the assets would take it as ``AssetSpec(owners=...)``.
"""

from __future__ import annotations

from crm_pipelines import catalog
from crm_pipelines.rules_doc import rule_ref, rule_refs

CONNECTION_TAG = "crm_pipelines/connection"  # the same key as the runs' tag (``defs/run_tags.py``)
LAYER_TAG = "crm_pipelines/layer"

_API = {
    "hubspot": "HubSpot's CRM v3 API",
    "salesforce": "Salesforce's REST API",
    "dynamics": "the Dataverse Web API of Dynamics 365",
}
# how a window of changes is read, counted and swept for deletions, per CRM
_READ = {
    "hubspot": (
        "search on the object's modification property (`lastmodifieddate`, else `hs_lastmodifieddate`), "
        "with the list endpoint alongside for a window holding most records (the bulk import); its "
        "associations (v4) are read with it"
    ),
    "salesforce": (
        "a SOQL query on `SystemModstamp` for small windows, a Bulk API 2.0 query job for large ones (the bulk import)"
    ),
    "dynamics": "an OData query on `modifiedon` (`$filter`, paged)",
}
_COUNT = {"hubspot": "the search total", "salesforce": "`SELECT COUNT()`", "dynamics": "`$count`"}
# Sources: HubSpot restores deleted records for 90 days
# (https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/delete-contact); Salesforce's
# getDeleted covers the last 15 days (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getdeleted.md,
# specs/salesforce/FACTS.md §7).
_DELETIONS = {
    "hubspot": "archived records, swept on their own cursor (HubSpot keeps them 90 days and search skips them)",
    "salesforce": "`getDeleted` within its 15-day reach, else `queryAll` with `IsDeleted = true`",
    "dynamics": "change tracking (a delta link per table)",
}
# the rules an object's mirror serves besides the extract's own (OPS-1, OPS-2, OPS-7)
_OBJECT_RULES: dict[tuple[str, str], tuple[str, ...]] = {
    ("hubspot", "contacts"): ("CON-2", "ROLL-1"),
    ("hubspot", "companies"): ("COM-1",),
    ("hubspot", "deals"): ("DEAL-1",),
    ("hubspot", "tasks"): ("OPS-4",),
    ("hubspot", "pipelines"): ("DEAL-2", "DEAL-3"),
    ("salesforce", "Lead"): ("CON-4", "DEL-2"),
    ("salesforce", "Contact"): ("CON-2", "CON-4", "DEL-2"),
    ("salesforce", "Account"): ("COM-1",),
    ("salesforce", "Opportunity"): ("DEAL-1", "DEL-3"),
    ("salesforce", "OpportunityContactRole"): ("DEAL-6",),
    ("salesforce", "Task"): ("OPS-4",),
    ("salesforce", "OpportunityStage"): ("DEAL-2", "DEAL-4"),
    ("salesforce", "RecordType"): ("DEAL-3",),
    ("dynamics", "contacts"): ("CON-2", "DEL-1"),
    ("dynamics", "leads"): ("CON-2", "DEL-1"),
    ("dynamics", "accounts"): ("COM-1", "DEL-1"),
    ("dynamics", "opportunities"): ("DEAL-1", "DEL-1"),
}


def object_rules(crm: str, obj: str) -> tuple[str, ...]:
    partitioned = catalog.get(crm, obj).partitioned
    extract = ("OPS-1", "OPS-2", "OPS-7") if partitioned else ("OPS-2",)
    swept = ("DEL-5",) if crm == "hubspot" and partitioned else ()  # archived records' own sweep
    return (*extract, *swept, *_OBJECT_RULES.get((crm, obj), ()))


def asset_tags(crm: str) -> dict[str, str]:
    """Labels the asset graph and catalog filter on (Dagster shows definition tags; they do not reach runs)."""
    return {CONNECTION_TAG: crm, LAYER_TAG: "extract"}


def partitioned_description(crm: str, obj: str, start_date: str, per_run: int) -> str:
    entry = catalog.get(crm, obj)
    return (
        f"**{crm} `{obj}`** as {_API[crm]} returns them, kept in the mirror table `{entry.mirror_table}` of the "
        f"state database (deleted records flagged, not removed).\n\n"
        f"**Reads** the records modified in each run's window: {_READ[crm]}. Deletions: {_DELETIONS[crm]}.\n\n"
        f"**Partitions**: one per day (UTC) of modification time (`{entry.modified_field}`) from {start_date}; the "
        f"first also holds everything modified before it, and today's is read from the object's cursor by the sync "
        f"loop. A backfill (the bulk import) reads up to {per_run} days a run, in one window.\n\n"
        f"**Where to look**: the overview shows the newest partition, often today's with few or no changes; "
        f"`mirror_live_total` (and the row count) on every materialization is the whole mirror. Each partition's "
        f"`records_read` and `records_deleted` are that day's; a run's `api_calls` are on its last partition. "
        f"`api_calls_used_24h` against `api_calls_budget_24h` is the connection's usage (OPS-2), plotted over time "
        f"on the Plots tab.\n\n"
        f"**Check** `complete`: the CRM's own count ({_COUNT[crm]}) of the window against the mirror's.\n\n"
        f"Rules: {rule_refs(*object_rules(crm, obj))}."
    )


def reference_description(crm: str, obj: str) -> str:
    entry = catalog.get(crm, obj)
    return (
        f"**{crm} `{obj}`** (reference data) as {_API[crm]} returns them, kept in the mirror table "
        f"`{entry.mirror_table}` of the state database. Small: read whole on every run, not partitioned, so each "
        f"materialization's `records_read` is the whole object and `api_calls` what reading it cost.\n\n"
        f"Rules: {rule_refs(*object_rules(crm, obj))}."
    )


def complete_description(crm: str) -> str:
    return (
        f"{rule_ref('OPS-7')}: compares the CRM's own count ({_COUNT[crm]}) of the records modified in the run's "
        f"window (`window_start` to `window_end`: the run's partitions; the first partition's window starts in "
        f"1970) with the live rows the mirror holds for the same window (`crm_count`, `mirror_count`), and fails "
        f"when the mirror holds fewer. `0 / 0` means no record was modified in that window (often today's "
        f"partition)."
    )

"""The ``writeback`` group's plans (OPS-5: a dry run): what the sync would write to each CRM, and why.

So far the plan covers contacts: those to create in each CRM (CON-1/3/5/6/7/8, DEL-4;
``sync/contact_creates.py``) with every candidate left out and why, and the mapped fields of linked contacts
merged under the conflict rules (CONF-1..6, CON-1; ``sync/merge.py``). Associations, deletions, companies and
deals come with the rest of issue 12. Nothing is written: each plan shows, in its materialization's metadata,
its creates, its updates (record, field, old -> new, the rule that decided) and the conflicts and who won."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import dagster as dg
import pandas as pd

from crm_pipelines.crm.check import environment_secrets
from crm_pipelines.crm.connections import writes_on
from crm_pipelines.defs.resources import CrmSettings, StateDatabase
from crm_pipelines.defs.unified.assets import AUTOMATION, CONTACTS, FIELDS
from crm_pipelines.defs.writeback.plan_inputs import budget_split, contact_create_plan, contact_merges
from crm_pipelines.sync.calls import calls_needed
from crm_pipelines.sync.field_plan import field_updates

TARGETS = ("hubspot", "salesforce", "dynamics")
PLANS = {crm: dg.AssetKey(["writeback", f"{crm}_plan"]) for crm in TARGETS}
SAMPLE = 20
CONFLICTS = "conflicts_resolved_by_window"
WITHIN_BUDGET = "plan_within_budget"
SCOPE = "contacts: creates and field updates of linked records (associations, deletions, companies, deals: " \
        "not yet planned)"


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    cols = ["record_id", "field", "old", "new", "decided_by"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame[cols].head(SAMPLE).itertuples(index=False):
        cells = ["" if v is None or v != v else str(v).replace("|", "\\\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _creates_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    lines = ["| from | record | as | email |", "|---|---|---|---|"]
    for r in frame.head(SAMPLE).itertuples(index=False):
        lines.append(f"| {r.source_crm} | {r.source_id} | {r.object_type} | {r.email or ''} |")
    return "\n".join(lines)


def plan_metadata(updates: pd.DataFrame, creates: pd.DataFrame | None = None,
                  left_out: pd.DataFrame | None = None) -> dict:
    conflicts = updates[updates["conflict"]]
    creates = creates if creates is not None else pd.DataFrame(columns=["object_type"])
    left_out = left_out if left_out is not None else pd.DataFrame(columns=["reason"])
    return {
        "scope": SCOPE,
        "creates": len(creates),
        "creates_by_type": dg.MetadataValue.json({str(k): int(v) for k, v in
                                                  creates["object_type"].value_counts().items()}),
        "sample_creates": dg.MetadataValue.md(_creates_markdown(creates)),
        "not_created": dg.MetadataValue.json({str(k): int(v) for k, v in left_out["reason"].value_counts().items()}),
        "updates": len(updates),
        "records": int(updates["record_id"].nunique()),
        "by_field": dg.MetadataValue.json({str(k): int(v) for k, v in updates["field"].value_counts().items()}),
        "by_rule": dg.MetadataValue.json({str(k): int(v) for k, v in updates["decided_by"].value_counts().items()}),
        "conflicts": len(conflicts),
        "sample_updates": dg.MetadataValue.md(_markdown(updates)),
        "sample_conflicts": dg.MetadataValue.md(_markdown(conflicts)),
    }


def build_plan_assets() -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(key, deps=[CONTACTS, FIELDS], group_name="writeback", kinds={"pandas"},
                     description=f"What the sync would write to {crm} (a dry run, OPS-5): {SCOPE}",
                     automation_condition=AUTOMATION)
        for crm, key in PLANS.items()
    ]

    check_specs = [
        spec
        for crm, key in PLANS.items()
        for spec in (
            dg.AssetCheckSpec(CONFLICTS, asset=key, description=f"CONF-1/2: fields changed in {crm} and the "
                              "other CRM within the window, and who won (a warning when there are any)"),
            dg.AssetCheckSpec(WITHIN_BUDGET, asset=key, description="OPS-2/OPS-8: the plan fits the calls left "
                              "in the 24 h budget (else records are deferred)"),
        )
    ]

    @dg.multi_asset(specs=specs, check_specs=check_specs, name="writeback_plans")
    def writeback_plans(context: dg.AssetExecutionContext, state: StateDatabase, crm_settings: CrmSettings):
        settings = crm_settings.settings
        merged = contact_merges(state.engine(), settings)
        updates = field_updates(merged, "contact")
        creates, left_out = contact_create_plan(state.engine(), settings)
        secrets = environment_secrets()
        for crm, key in PLANS.items():
            planned = updates.get(crm, pd.DataFrame(columns=["record_id", "field", "decided_by", "conflict"]))
            writes = "on" if writes_on(settings, crm, secrets) else "off (the plan is all that is made)"
            made = len(creates.get(crm, ()))
            context.log.info(f"{crm} plan: {made} contacts to create, {len(planned)} field updates; writes {writes}")
            meta = plan_metadata(planned, creates.get(crm), left_out[left_out["target_crm"] == crm])
            kept, deferred, left = budget_split(state.engine(), settings, crm, updates.get(crm), creates.get(crm))
            meta |= {
                "api_calls_planned": calls_needed(crm, kept) + calls_needed(crm, deferred),  # OPS-8
                "api_calls_left_24h": "no limit set" if left is None else left,  # OPS-2
                "deferred_records": len(deferred),
            }
            if len(deferred):
                context.log.warning(f"{crm}: {len(deferred)} records deferred: the plan needs more calls than the "
                                    f"24 h budget has left ({left})")
            yield dg.MaterializeResult(asset_key=key, metadata={**meta, "writes": writes})
            conflicts = planned[planned["conflict"].astype(bool)] if len(planned) else planned
            yield dg.AssetCheckResult(
                asset_key=key, check_name=CONFLICTS, passed=conflicts.empty, severity=dg.AssetCheckSeverity.WARN,
                metadata={"count": len(conflicts), "sample": dg.MetadataValue.md(_markdown(conflicts))})
            yield dg.AssetCheckResult(
                asset_key=key, check_name=WITHIN_BUDGET, passed=deferred.empty, severity=dg.AssetCheckSeverity.WARN,
                metadata={"deferred": len(deferred), "calls_left_24h": -1 if left is None else left})

    return writeback_plans

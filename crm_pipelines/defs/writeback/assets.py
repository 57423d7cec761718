"""The ``writeback`` group's plans (OPS-5: a dry run): what the sync would write to each CRM, and why.

Each plan (``defs/writeback/plans.py``) holds the contacts, companies and deals to create (CON-1/3/5/6/7/8,
DEL-4, COM-1..3, DEAL-2..5, with the HubSpot pipelines DEAL-3 needs), the field updates of linked records
merged under the conflict rules (CONF-1..6, CON-1) and the lifecycle rules (CON-9, COM-4, DEAL-7), the
association changes (DEAL-6), every candidate left out and why, the records reported instead of guessed
(unmapped stages), and the API calls it takes against the 24 h budget (OPS-2, OPS-8). Nothing is written: each
plan shows it in its materialization's metadata.

The plan is stored in the state database (``defs/writeback/stored_plan.py``, ``state/plan_store.py``): after an
incremental ``unified`` only the identities it changed, and what they reach, are replanned (``plan_scope.py``);
``full: true`` in the run config replans everything. The writes issue executes the stored plan."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import math

import dagster as dg
import pandas as pd
from pydantic import Field

from crm_pipelines.crm.check import environment_secrets
from crm_pipelines.crm.connections import writes_on
from crm_pipelines.defs.resources import CrmSettings, StateDatabase
from crm_pipelines.defs.unified.assets import ASSOCIATIONS, COMPANIES, CONTACTS, DEALS, FIELDS
from crm_pipelines.defs.unified.labels import WRITES_TAG, state_kind
from crm_pipelines.defs.unified.markdown import SAMPLE, markdown_table, secret_values
from crm_pipelines.defs.writeback.create_value_inputs import carried_values
from crm_pipelines.defs.writeback.plan_checks import (
    BUDGET_TODO,
    CONFLICTS_TODO,
    budget_description,
    conflicts_description,
)
from crm_pipelines.defs.writeback.plan_inputs import calls_left
from crm_pipelines.defs.writeback.plan_tables import (
    counts_table,
    update_samples,
    update_samples_markdown,
)
from crm_pipelines.defs.writeback.stored_plan import stored_plans, update_plans
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings
from crm_pipelines.state import plan_store
from crm_pipelines.state.api_usage import budget_metadata
from crm_pipelines.sync.calls import UNBATCHED, batch_size, calls_needed, fit_budget
from crm_pipelines.sync.plan import TargetPlan

TARGETS = ("hubspot", "salesforce", "dynamics")
PLANS = {crm: dg.AssetKey(["writeback", f"{crm}_plan"]) for crm in TARGETS}
CONFLICTS = "conflicts_resolved_by_window"
WITHIN_BUDGET = "plan_within_budget"
SCOPE = "contacts, companies and deals: creates (with the pipelines they need), field updates of linked " \
        "records, lifecycle stages, associations, cross-CRM rollups (ROLL-2/3, where targets are named), deletes " \
        "carried from the other app (DEL-1..3), HubSpot tasks as Salesforce Tasks (OPS-4); findings"


class PlanConfig(dg.Config):
    full: bool = Field(False, description="replan every identity instead of those unified changed since the last "
                       "plan (the stored plan is still updated row by row)")


def _markdown(frame: pd.DataFrame, secrets: list[str] = ()) -> str:
    return markdown_table(frame, ["kind", "record_id", "field", "old", "new", "decided_by"], secrets=secrets)


def _counts(frame: pd.DataFrame, column: str) -> dict:
    return {str(k): int(v) for k, v in frame[column].value_counts().items()} if len(frame) else {}


def plan_metadata(plan: TargetPlan) -> dict:
    """What a plan's materialization shows: counts per object and action, samples, findings."""
    updates, creates = plan.updates, plan.creates
    conflicts = updates[updates["conflict"].astype(bool)]
    counts = plan.counts().reset_index()
    return {
        "scope": SCOPE,
        "counts": dg.MetadataValue.md(markdown_table(counts, list(counts.columns), sample=len(counts))),
        "creates": len(creates),
        "creates_by_object": dg.MetadataValue.json(_counts(creates, "object")),
        "creates_by_type": dg.MetadataValue.json(_counts(creates, "object_type")),
        "sample_creates": dg.MetadataValue.md(markdown_table(
            creates, ["object", "source_crm", "source_id", "object_type", "detail", "pipeline", "stage"])),
        "sample_create_values": dg.MetadataValue.md(markdown_table(  # what the creates are created with
            plan.create_values, ["object", "source_id", "target_object", "target_field", "api_value", "rule"])),
        "not_created": dg.MetadataValue.json(_counts(plan.left_out, "reason")),
        "not_deleted": dg.MetadataValue.json(_counts(plan.not_deleted, "reason")),  # DEL-1..3, CON-1
        "updates": len(updates),
        "records": int(updates["record_id"].nunique()),
        "by_field": dg.MetadataValue.json(_counts(updates, "field")),
        "by_rule": dg.MetadataValue.json(_counts(updates, "decided_by")),
        "conflicts": len(conflicts),
        "sample_updates": dg.MetadataValue.md(_markdown(updates)),
        "sample_conflicts": dg.MetadataValue.md(_markdown(conflicts)),
        "associations": len(plan.associations),
        "associations_by_kind": dg.MetadataValue.json(_counts(plan.associations, "object")),
        "sample_associations": dg.MetadataValue.md(markdown_table(
            plan.associations, ["object", "from_id", "to_id", "source_crm", "via"])),
        "deletes": len(plan.deletes),  # DEL-1..3; deletions not carried are in not_deleted with their rule
        "deletes_by_object": dg.MetadataValue.json(_counts(plan.deletes, "object")),
        "sample_deletes": dg.MetadataValue.md(markdown_table(
            plan.deletes, ["object", "record_id", "deleted_crm", "deleted_id", "deleted_at", "rule"])),
        "findings": len(plan.findings),
        "findings_by_reason": dg.MetadataValue.json(_counts(plan.findings, "reason")),
        "sample_findings": dg.MetadataValue.md(markdown_table(plan.findings, ["object", "crm", "id", "reason"])),
    }


def _dim(summary: pd.DataFrame, part: str, dim: str) -> dict:
    rows = summary[(summary["part"] == part) & (summary["dim"] == dim)].sort_values(["n", "value"],
                                                                                     ascending=[False, True])
    return {str(v): int(n) for v, n in zip(rows["value"], rows["n"], strict=True)}


def _head(engine, crm: str, part: str, columns: list[str], conflicts: bool = False) -> pd.DataFrame:
    frame = plan_store.head(engine, crm, part, SAMPLE, conflicts)
    return frame.reindex(columns=columns) if len(frame) else pd.DataFrame(columns=columns)


def stored_metadata(engine, settings: Settings, crm: str, secrets: list[str] | None = None,
                    ) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``plan_metadata`` of the stored plan, from its counts and first rows (not its rows: they grow with the
    data, issue 12), the sampled creates' values read as they would be written; a sample of the conflicts; the
    writes per ``action`` and ``object`` (``records``); the records per object and action (``counts``, before
    the budget's deferrals: ``plan_tables.counts_table``). ``secrets``: values masked in the tables."""
    summary = plan_store.summary(engine, crm)
    secrets = secrets or []

    def table(frame: pd.DataFrame, cols: list[str], sample: int = SAMPLE) -> dg.MetadataValue:
        return dg.MetadataValue.md(markdown_table(frame, cols, sample=sample, secrets=secrets))

    def total(part: str) -> int:
        return sum(_dim(summary, part, "rows").values())

    counts = pd.DataFrame({
        "create": pd.Series(_dim(summary, "creates", "object"), dtype="int64"),
        "update": pd.Series(_dim(summary, "updates", "records"), dtype="int64"),
        "associate": pd.Series(_dim(summary, "associations", "object"), dtype="int64"),
        "delete": pd.Series(_dim(summary, "deletes", "object"), dtype="int64"),
        "left out": pd.Series(_dim(summary, "left_out", "object"), dtype="int64"),
        "not deleted": pd.Series(_dim(summary, "not_deleted", "object"), dtype="int64"),
        "finding": pd.Series(_dim(summary, "findings", "object"), dtype="int64"),
    }).fillna(0).astype(int).sort_index()  # fmt: skip
    counts.index.name = "object"
    counts = counts.reset_index()
    examples = update_samples(engine, crm)
    update_cols = ["kind", "record_id", "field", "old", "new", "decided_by"]
    value_cols = ["object", "source_id", "target_object", "target_field", "api_value", "rule"]
    delete_cols = ["object", "record_id", "deleted_crm", "deleted_id", "deleted_at", "rule"]
    create_cols = ["object", "identity_id", "source_crm", "source_id", "object_type", "detail", "pipeline", "stage"]
    sample_creates = _head(engine, crm, "creates", create_cols)
    sample_values = carried_values(engine, settings, crm, sample_creates).reindex(columns=value_cols)
    conflicts = _dim(summary, "updates", "conflict").get("True", 0)
    sample_conflicts = _head(engine, crm, "updates", update_cols, conflicts=True) if conflicts else \
        pd.DataFrame(columns=update_cols)
    meta = {
        "scope": SCOPE,
        # per object and action, deferrals included (set by the asset once the budget is applied)
        "counts": dg.MetadataValue.md(markdown_table(counts, list(counts.columns), sample=len(counts))),
        # a few field updates of each object, old → new with the rule that decided (CONF-1..6, CON-9, DEAL-7)
        "update_examples": dg.MetadataValue.md(update_samples_markdown(examples, secrets)),
        "creates": total("creates"),
        "creates_by_object": dg.MetadataValue.json(_dim(summary, "creates", "object")),
        "creates_by_type": dg.MetadataValue.json(_dim(summary, "creates", "object_type")),
        "sample_creates": table(sample_creates, [
            "object", "source_crm", "source_id", "object_type", "detail", "pipeline", "stage"]),
        # what the sampled creates are created with
        "sample_create_values": table(sample_values, value_cols),
        "not_created": dg.MetadataValue.json(_dim(summary, "left_out", "reason")),
        "not_deleted": dg.MetadataValue.json(_dim(summary, "not_deleted", "reason")),  # DEL-1..3, CON-1
        "updates": total("updates"),
        "records": sum(_dim(summary, "updates", "records").values()),
        "by_field": dg.MetadataValue.json(_dim(summary, "updates", "field")),
        "by_rule": dg.MetadataValue.json(_dim(summary, "updates", "decided_by")),
        "conflicts": conflicts,
        "sample_updates": dg.MetadataValue.md(_markdown(_head(engine, crm, "updates", update_cols), secrets)),
        "sample_conflicts": dg.MetadataValue.md(_markdown(sample_conflicts, secrets)),
        "associations": total("associations"),
        "associations_by_kind": dg.MetadataValue.json(_dim(summary, "associations", "object")),
        "sample_associations": table(_head(engine, crm, "associations", [
            "object", "from_id", "to_id", "source_crm", "via"]), ["object", "from_id", "to_id", "source_crm", "via"]),
        "deletes": total("deletes"),  # DEL-1..3; deletions not carried are in not_deleted with their rule
        "deletes_by_object": dg.MetadataValue.json(_dim(summary, "deletes", "object")),
        "sample_deletes": table(_head(engine, crm, "deletes", delete_cols), delete_cols),
        "findings": total("findings"),
        "findings_by_reason": dg.MetadataValue.json(_dim(summary, "findings", "reason")),
        "sample_findings": table(
            _head(engine, crm, "findings", ["object", "crm", "id", "reason"]), ["object", "crm", "id", "reason"]),
    }  # fmt: skip
    work = pd.DataFrame([(*v.split("|", 1), n) for v, n in _dim(summary, "work", "calls").items()],
                        columns=["action", "object", "records"])
    return meta, sample_conflicts, work, counts


def calls_table(crm: str, kept: pd.DataFrame, deferred: pd.DataFrame) -> pd.DataFrame:
    """Per action and object: records and calls planned, records deferred (OPS-8)."""
    rows = []
    both = pd.concat([kept.assign(_d=False), deferred.assign(_d=True)], ignore_index=True)
    for (action, obj), part in both.groupby(["action", "object"], sort=True):
        rows.append((action, obj, len(part), calls_needed(crm, part), int(part["_d"].sum())))
    return pd.DataFrame(rows, columns=["action", "object", "records", "calls", "deferred"])


def plan_description(crm: str) -> str:
    return (
        f"What the sync would write to {crm} now: a dry run (OPS-5), made from the `unified` tables in the state "
        f"database (not from {crm}'s API). It holds {SCOPE}.\n\n"
        "Metadata: `counts` (records per object and action, deferred ones included), `update_examples` (a few "
        "field updates per object as old → new with the rule that decided: CONF-1..6, CON-9, DEAL-7), samples of "
        "creates, associations (DEAL-6), deletes (DEL-1..3) and findings, and the API calls: `api_calls_planned` "
        "against `api_calls_used_24h` / `api_calls_budget_24h` (OPS-2, OPS-8), plotted over time on the asset's "
        f"Plots tab. `writes` says whether `{crm}_writes` carries the plan out (OPS-10: "
        f"`connections.{crm}.writes`).")


def build_plan_assets(settings: Settings | None = None) -> dg.AssetsDefinition:
    """The three plans; ``settings`` (when known) name the state database's kind shown in the graph."""
    stored = state_kind(settings)
    specs = [
        dg.AssetSpec(key, deps=[CONTACTS, COMPANIES, DEALS, FIELDS, ASSOCIATIONS], group_name="writeback",
                     kinds={crm, "pandas", *stored}, tags={WRITES_TAG: crm},
                     description=with_rule_refs(plan_description(crm)))
        for crm, key in PLANS.items()
    ]

    check_specs = [
        spec
        for crm, key in PLANS.items()
        for spec in (
            dg.AssetCheckSpec(CONFLICTS, asset=key, description=with_rule_refs(conflicts_description(crm))),
            dg.AssetCheckSpec(WITHIN_BUDGET, asset=key, description=with_rule_refs(budget_description(crm))),
        )
    ]

    @dg.multi_asset(specs=specs, check_specs=check_specs, name="writeback_plans")
    def writeback_plans(context: dg.AssetExecutionContext, config: PlanConfig, state: StateDatabase,
                        crm_settings: CrmSettings):
        settings = crm_settings.settings
        engine = state.engine()
        update = update_plans(engine, settings, full=config.full)
        context.log.info(f"plan: {update.mode} ({update.reason}); identities replanned {update.replanned}, "
                         f"{update.rows_written} stored plan rows written")
        secrets = environment_secrets()
        masked = secret_values(settings, secrets.values)
        for crm, key in PLANS.items():
            meta, conflicts, work, counts = stored_metadata(engine, settings, crm, masked)
            writes = "on" if writes_on(settings, crm, secrets) else "off (the plan is all that is made)"
            context.log.info(f"{crm} plan: {meta['creates']} creates, {meta['updates']} field updates, "
                             f"{meta['associations']} associations, {meta['findings']} findings; writes {writes}")
            left = calls_left(engine, settings, crm)
            needed = sum(math.ceil(n / batch_size(crm, obj)) for obj, n in zip(work["object"], work["records"],
                                                                                strict=True))
            if left is not None and needed > left:  # what is deferred is listed: the writes are read (OPS-8)
                kept, deferred = fit_budget(crm, stored_plans(engine)[crm].work(), left)
                calls = calls_table(crm, kept, deferred)
                needed = calls_needed(crm, kept) + calls_needed(crm, deferred)
            else:
                deferred = pd.DataFrame(columns=["action", "object", "record_id"])
                calls = work.assign(calls=[math.ceil(n / batch_size(crm, obj)) for obj, n in zip(
                    work["object"], work["records"], strict=True)], deferred=0).sort_values(["action", "object"])
            meta |= {
                "plan_mode": update.mode,  # full or incremental (stored plan brought up to date)
                "plan_reason": update.reason,
                "identities_replanned": dg.MetadataValue.json(update.replanned),
                "identities_replanned_total": sum(update.replanned.values()),
                "tasks_replanned": update.tasks_replanned,  # OPS-4: HubSpot tasks whose inputs moved
                "stored_rows_written": update.rows_written,
                "plan_seconds": dg.MetadataValue.json({k: round(v, 3) for k, v in update.seconds.items()}),
                # a full plan's second process (``plans.planned_elsewhere``), beside the run's own
                **({"plan_elsewhere_peak_rss_mb": update.elsewhere_peak_rss_mb}
                   if update.elsewhere_peak_rss_mb is not None else {}),
                "planned_writes": int(work["records"].sum()),  # one per record and action
                "unbatched_writes": int(work.loc[work["object"].isin([o for c, o in UNBATCHED if c == crm]),
                                                 "records"].sum()),
                "api_calls_planned": needed,  # OPS-8
                "api_calls_by_object": dg.MetadataValue.md(markdown_table(calls, list(calls.columns),
                                                                          sample=len(calls))),
                **budget_metadata(engine, crm, getattr(settings.connections, crm).api_call_limit),  # OPS-2
                "deferred_records": len(deferred),
                "deferred_by_object": dg.MetadataValue.json(_counts(deferred, "object")),
            }
            if len(deferred):
                context.log.warning(f"{crm}: {len(deferred)} records deferred: the plan needs more calls than the "
                                    f"24 h budget has left ({left})")
            shown = counts_table(counts, deferred)
            meta["counts"] = dg.MetadataValue.md(markdown_table(shown, list(shown.columns), sample=len(shown)))
            yield dg.MaterializeResult(asset_key=key, metadata={**meta, "writes": writes})
            yield dg.AssetCheckResult(
                asset_key=key, check_name=CONFLICTS, passed=meta["conflicts"] == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"count": meta["conflicts"], "sample": dg.MetadataValue.md(_markdown(conflicts, masked)),
                          **({"what_to_do": dg.MetadataValue.md(CONFLICTS_TODO.format(crm=crm))}
                             if meta["conflicts"] else {})})  # fmt: skip
            yield dg.AssetCheckResult(
                asset_key=key, check_name=WITHIN_BUDGET, passed=deferred.empty, severity=dg.AssetCheckSeverity.WARN,
                metadata={"deferred": len(deferred), "calls_left_24h": -1 if left is None else left,
                          "api_calls_planned": needed,
                          **({"what_to_do": dg.MetadataValue.md(BUDGET_TODO.format(crm=crm, left=left,
                                                                                  needed=needed))}
                             if len(deferred) else {})})  # fmt: skip

    return writeback_plans

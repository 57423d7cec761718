"""The ``unified`` group: the transform kept up to date from the mirror (incrementally, or in full when
asked or needed: ``update.py``), with asset checks for duplicate emails, unmapped stages, failed
normalization and contacts without a valid email (counted by the state database in every run). The sync loop
runs it after the extracts of what changed, in the same run (``defs/sync/change_sensor.py``). The checks that
read whole tables (incremental = full on a sample, ROLL-1's drift) are checks of their own on the sweep
schedule (``sweep.py``)."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd
import yaml
from pydantic import Field

from crm_pipelines.defs.resources import CrmSettings, StateDatabase
from crm_pipelines.defs.unified import rollup_view
from crm_pipelines.defs.unified.check_texts import DESCRIPTIONS, TODO
from crm_pipelines.defs.unified.labels import enabled_crms, reads_tags, state_kind
from crm_pipelines.defs.unified.mirrors import transform_settings
from crm_pipelines.defs.unified.stored_checks import stored_checks
from crm_pipelines.defs.unified.update import update_unified
from crm_pipelines.extract.catalog import EXTRACTED
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings
from crm_pipelines.state import unified
from crm_pipelines.transform import checks
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.stages import (
    auto_map_stages,
    dynamics_stages,
    hubspot_stages,
    proposal_as_mapping,
    salesforce_stages,
)

CONTACTS = dg.AssetKey(["unified", "contact_identities"])
COMPANIES = dg.AssetKey(["unified", "company_identities"])
DEALS = dg.AssetKey(["unified", "deal_identities"])
FIELDS = dg.AssetKey(["unified", "field_values"])
ROLLUPS = dg.AssetKey(["unified", "contact_rollups"])
ASSOCIATIONS = dg.AssetKey(["unified", "associations"])

DUPLICATE_EMAILS = "duplicate_emails"
NO_VALID_EMAIL = "contacts_without_valid_email"
UNMAPPED_STAGES = "unmapped_stages"
FAILED_NORMALIZATION = "failed_normalization"


def _check(key: dg.AssetKey, outcome: checks.CheckOutcome) -> dg.AssetCheckResult:
    metadata = {
        "count": outcome.count,
        "by": dg.MetadataValue.json(outcome.by),
        "sample": dg.MetadataValue.json(outcome.sample),
    }
    if not outcome.passed:  # a failing check says why it fails and what to do (issue 15)
        metadata["why"] = dg.MetadataValue.md(DESCRIPTIONS[outcome.name])
        metadata["what_to_do"] = dg.MetadataValue.md(TODO[outcome.name])
    return dg.AssetCheckResult(
        asset_key=key, check_name=outcome.name, passed=outcome.passed, severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


PROPOSAL_COLUMNS = (
    "other_pipeline",
    "stage",
    "label",
    "hubspot_pipeline",
    "hubspot_stage",
    "hubspot_label",
    "score",
    "source",
)


def stage_proposals(mirrors: Mirrors, settings: Settings) -> pd.DataFrame:
    """DEAL-2 auto-map proposals for every configured pipeline mapping that asks for one."""
    parts = []
    for crm, deals in (("salesforce", settings.sync.salesforce.deals), ("dynamics", settings.sync.dynamics.deals)):
        wanted = [m for m in deals.pipelines if m.auto_map]
        if not wanted:
            continue
        other = salesforce_stages(mirrors) if crm == "salesforce" else dynamics_stages()
        hubspot = hubspot_stages(mirrors)
        for m in wanted:
            proposal = auto_map_stages(other, hubspot, m.other_pipeline, m.hubspot_pipeline, dict(m.stages))
            parts.append(proposal.assign(crm=crm))
    columns = [*PROPOSAL_COLUMNS, "crm"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def proposal_yaml(proposal: pd.DataFrame) -> str:
    blocks = []
    for (crm, _other, _hubspot), part in proposal.groupby(["crm", "other_pipeline", "hubspot_pipeline"]):
        mapping = {**proposal_as_mapping(part), "auto_map": True}
        blocks.append(f"sync.{crm}.deals.pipelines:\n" + yaml.safe_dump([mapping], sort_keys=False))
    return "\n".join(f"```yaml\n{b}```" for b in blocks)


class UnifiedConfig(dg.Config):
    full: bool = Field(False, description="recompute everything from the mirror instead of the changed rows")


def _check_results(found: dict[str, checks.CheckOutcome]) -> list[dg.AssetCheckResult]:
    return [
        _check(CONTACTS, found["duplicate_emails"]),
        _check(CONTACTS, found["contacts_without_valid_email"]),
        _check(DEALS, found["unmapped_stages"]),
        _check(FIELDS, found["failed_normalization"]),
    ]


def build_unified_assets(settings: Settings | None = None) -> dg.AssetsDefinition:
    enabled = [crm for crm in EXTRACTED if settings is None or getattr(settings.connections, crm).enabled]
    deps = [dg.AssetKey([crm, obj]) for crm in enabled for obj in EXTRACTED[crm]]
    crms = enabled_crms(settings)
    source = f"From the mirrored records of {', '.join(crms)} (the extract assets), in the state database."
    descriptions = {
        CONTACTS: "One identity per person across the CRMs, matched by email, trimmed and case-insensitive "
                  "(CON-2), only valid emails where asked (CON-3), a Salesforce Lead and Contact as one (CON-4), "
                  "duplicates inside one CRM reported, one winner linked (CON-11); and the link table the writes "
                  "use. Tables: contact_identities, contact_members, contact_findings, contact_lifecycle.",
        COMPANIES: "Companies linked across the CRMs by the link table, then their contacts, then the domain "
                   "(COM-1/2/3), and the accounts that qualify to be created (account_candidates).",
        DEALS: "Deals linked across the CRMs by the link table only (DEAL-5), each Salesforce and Dynamics deal's "
               "pipeline and stage mapped to HubSpot's (DEAL-1..4); with `auto_map` a full run adds "
               "`stage_mapping_proposal`, pairs to review and paste into the settings (DEAL-2).",
        FIELDS: "The mapped field values of every record, default and custom mappings (DEAL-1), normalized to one "
                "form (CON-10: countries and states to ISO codes, dates, numbers), and owners matched by email: "
                "what the plans compare under CONF-1..6.",
        ROLLUPS: "The five contact rollups of HubSpot (ROLL-1: num_associated_deals, first_deal_created_date, "
                 "recent_deal_close_date, recent_deal_amount, total_revenue) computed from the HubSpot deals, "
                 "one row per live contact with a deal. Metadata: `rollup_sample` (five contacts: identity, email, "
                 "deals, revenue) and the totals as numbers; the `hubspot_rollups_match` check compares them with "
                 "HubSpot's own values.",
        ASSOCIATIONS: "Associations between identities (DEAL-6): contact→company, deal→contact, deal→company, "
                      "each with the CRM that states it; what the plans add or remove in each CRM.",
    }
    stored = state_kind(settings)
    specs = [
        dg.AssetSpec(key, deps=deps, group_name="unified", kinds={"pandas", *stored}, tags=reads_tags(crms),
                     description=with_rule_refs(f"{text}\n\n{source}"))
        for key, text in descriptions.items()
    ]
    check_specs = [
        dg.AssetCheckSpec(name, asset=asset, description=with_rule_refs(DESCRIPTIONS[name]))
        for name, asset in ((DUPLICATE_EMAILS, CONTACTS), (NO_VALID_EMAIL, CONTACTS), (UNMAPPED_STAGES, DEALS),
                            (FAILED_NORMALIZATION, FIELDS))
    ]

    @dg.multi_asset(specs=specs, check_specs=check_specs, name="unified_transform")
    def unified_transform(
        context: dg.AssetExecutionContext, config: UnifiedConfig, state: StateDatabase, crm_settings: CrmSettings
    ):
        engine = state.engine()
        current = crm_settings.settings
        settings = transform_settings(current)
        update = update_unified(engine, settings, full=config.full,
                                proposals=lambda mirrors: stage_proposals(mirrors, current))
        context.log.info(f"unified: {update.mode} update ({update.reason}); {update.changed_rows} rows written")
        if update.write_s:
            slowest = sorted(update.write_s.items(), key=lambda kv: -kv[1])[:5]
            context.log.info("slowest table writes: " + ", ".join(f"{t} {s:.2f} s" for t, s in slowest))
        common = {
            "mode": update.mode,
            "reason": update.reason,
            "mirror_rows_read": update.mirror_rows,
            "rows_written": update.changed_rows,
            "links_changed": update.links_changed,
            **{k: round(v, 2) for k, v in update.seconds.items()},
        }
        if update.reads is not None:  # Invariant 6: what the incremental run read of the stored result
            common |= {"stored_rows_read": update.reads.rows, "stored_read_rounds": update.reads.rounds,
                       "stored_rows_read_by_table": dg.MetadataValue.json(dict(sorted(update.reads.by_table.items())))}
        # the checks count what the update committed while the materializations below are recorded
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unified-checks") as pool:
            counted = pool.submit(stored_checks, engine)
            yield from _materializations(engine, update, common)
            yield from _check_results(counted.result())

    return unified_transform


def _materializations(engine, update, common: dict) -> Iterator[dg.MaterializeResult]:
    """Each asset's materialization: the update's figures and what it wrote of the asset's tables."""
    for key, tables in TABLES_OF.items():
        metadata = {**common, **{f"written_{t}": update.written.get(t, 0) for t in tables}}
        if key == DEALS and update.mode == "full":
            proposal = unified.read(engine, "stage_proposals")
            if len(proposal):  # DEAL-2 auto-map: the proposal, ready to review and paste into the settings
                metadata["stage_mapping_proposal"] = dg.MetadataValue.md(proposal_yaml(proposal))
        if key == ROLLUPS:
            metadata |= _rollup_metadata(engine, update)
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def _rollup_metadata(engine, update) -> dict:
    """Five contacts' rollups and the table's totals (``rollup_view``: no whole-table read on the sync path)."""
    totals = update.rollup_totals if update.rollup_totals is not None else rollup_view.kept(engine)
    if totals is None:  # a state database from before the totals were kept: counted once, then kept
        totals = rollup_view.counted(engine)
        with engine.begin() as conn:
            rollup_view.keep(conn, totals)
    written = update.rollup_sample is not None and len(update.rollup_sample) > 0
    rows = update.rollup_sample if written else rollup_view.first_rows(engine)
    return {
        "rollup_sample": dg.MetadataValue.md(rollup_view.sample_markdown(engine, rows)),
        "rollup_sample_is": ("the contacts with the highest total revenue" if update.mode == "full" else
                             "contacts whose rollups this run recomputed, highest revenue first" if written else
                             "the first contacts by HubSpot id (this run recomputed no rollup)"),
        **rollup_view.totals_metadata(totals),
    }


# which declared tables each asset shows (every one of them: ``test_every_declared_table_has_an_asset``)
TABLES_OF = {
    CONTACTS: ("contact_identities", "contact_members", "contact_findings", "contact_lifecycle"),
    COMPANIES: ("company_identities", "company_findings", "account_candidates", "company_lifecycle",
                "company_domains", "company_links", "company_pair_src"),
    DEALS: ("deal_identities", "deal_stages", "stage_proposals", "hubspot_pipelines"),
    FIELDS: (*(f"fields_{c}_{o.lower()}" for c, o in unified.FIELD_OBJECTS), "field_findings", "owners"),
    ROLLUPS: ("contact_rollups", "deal_facts", "hubspot_deal_contacts"),
    ASSOCIATIONS: ("contact_company", "deal_contact", "deal_company", "deal_contact_src", "deal_company_src"),
}


def build_unified_checks() -> list[dg.AssetChecksDefinition]:
    """Checks defined apart from the transform, on the sweep schedule: incremental = full on a sample
    (``sample_check.py``) and ROLL-1, our rollups against HubSpot's (``rollup_check.py``)."""
    from crm_pipelines.defs.unified.rollup_check import build_rollup_drift_check
    from crm_pipelines.defs.unified.sample_check import build_sample_check

    return [build_sample_check(CONTACTS), build_rollup_drift_check(ROLLUPS)]

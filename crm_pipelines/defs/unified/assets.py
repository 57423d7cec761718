"""The ``unified`` group: one transform pass over every mirror, stored as result tables, with asset checks
for duplicate emails, unmapped stages, failed normalization and contacts without a valid email."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import time

import dagster as dg
import pandas as pd
import yaml

from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.defs.unified.mirrors import load_mirrors, transform_settings
from crm_pipelines.extract.catalog import EXTRACTED
from crm_pipelines.settings import Settings
from crm_pipelines.state.results import store_frames
from crm_pipelines.transform import checks
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.pipeline import TransformResult, run_transform
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


def _frames(result: TransformResult) -> dict[dg.AssetKey, dict[str, pd.DataFrame]]:
    fields = {f"fields_{crm}_{obj.lower()}": frame for (crm, obj), frame in result.fields.items()}
    return {
        CONTACTS: {
            "contact_identities": result.contacts.identities,
            "contact_members": result.contacts.members,
            "contact_findings": result.contacts.findings,
            "contact_lifecycle": result.lifecycle,
        },
        COMPANIES: {
            "company_identities": result.companies.identities,
            "account_candidates": result.account_candidates,
            "company_lifecycle": result.company_lifecycle,
        },
        DEALS: {"deal_identities": result.deals, "deal_stages": result.deal_stages},
        FIELDS: {**fields, "field_findings": result.field_findings, "owners": result.owners},
        ROLLUPS: {"contact_rollups": result.rollups, "deal_facts": result.deal_facts},
        ASSOCIATIONS: {
            "contact_company": result.contact_company,
            "deal_contact": result.deal_contact,
            "deal_company": result.deal_company,
        },
    }


def _check(key: dg.AssetKey, outcome: checks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "count": outcome.count,
            "by": dg.MetadataValue.json(outcome.by),
            "sample": dg.MetadataValue.json(outcome.sample),
        },
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


def build_unified_assets() -> dg.AssetsDefinition:
    deps = [dg.AssetKey([crm, obj]) for crm, objects in EXTRACTED.items() for obj in objects]
    descriptions = {
        CONTACTS: "CON-2/3/4/11: one identity per email across the CRMs, members and findings",
        COMPANIES: "COM-1/2/3: companies linked by link, contacts, then domain; Account candidates",
        DEALS: "DEAL-1..5: deals linked by link only; pipelines and stages mapped",
        FIELDS: "Default and custom field mappings, values normalized (CON-10), owners by email",
        ROLLUPS: "The five contact rollup properties of SPEC's rollup table",
        ASSOCIATIONS: "DEAL-6: contact→company, deal→contact, deal→company between identities",
    }
    specs = [
        dg.AssetSpec(key, deps=deps, group_name="unified", kinds={"pandas"}, description=text)
        for key, text in descriptions.items()
    ]
    check_specs = [
        dg.AssetCheckSpec(DUPLICATE_EMAILS, asset=CONTACTS, description="CON-11: emails shared inside one CRM"),
        dg.AssetCheckSpec(NO_VALID_EMAIL, asset=CONTACTS, description="CON-3: records without a valid email"),
        dg.AssetCheckSpec(UNMAPPED_STAGES, asset=DEALS, description="DEAL-2: deals in stages without mapping"),
        dg.AssetCheckSpec(FAILED_NORMALIZATION, asset=FIELDS, description="values that could not be converted"),
    ]

    @dg.multi_asset(specs=specs, check_specs=check_specs, name="unified_transform")
    def unified_transform(context: dg.AssetExecutionContext, state: StateDatabase, crm_connections: CrmConnections):
        engine = state.engine()
        started = time.perf_counter()
        mirrors = load_mirrors(engine)
        loaded = time.perf_counter()
        result = run_transform(mirrors, None, transform_settings(crm_connections.settings))
        computed = time.perf_counter()
        frames = _frames(result)
        proposal = stage_proposals(mirrors, crm_connections.settings)
        frames[DEALS]["stage_proposals"] = proposal
        for key, tables in frames.items():
            written = store_frames(engine, tables)
            metadata = {
                **{f"rows_{t}": n for t, n in written.items()},
                "load_s": round(loaded - started, 2),
                "transform_s": round(computed - loaded, 2),
            }
            if key == DEALS and len(proposal):
                # DEAL-2 auto-map: the proposal, ready to review and paste into the settings
                metadata["stage_mapping_proposal"] = dg.MetadataValue.md(proposal_yaml(proposal))
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        context.log.info(
            f"transform of {sum(len(f) for f in mirrors.frames.values())} mirror rows in {computed - loaded:.1f} s"
        )
        yield _check(CONTACTS, checks.duplicate_emails(result.contacts.findings))
        yield _check(CONTACTS, checks.contacts_without_valid_email(result.contacts.members))
        yield _check(DEALS, checks.unmapped_stages(result.deal_stages))
        yield _check(FIELDS, checks.failed_normalization(result.field_findings))

    return unified_transform

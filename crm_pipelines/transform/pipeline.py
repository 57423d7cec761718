"""The whole transform in one call: what the ``unified`` assets compute, from the mirrors and the links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from crm_pipelines.transform import associations as assoc
from crm_pipelines.transform.companies import (
    CompanyIdentities,
    account_creation_candidates,
    company_contact_pairs,
    company_domains,
    company_identities,
)
from crm_pipelines.transform.deals import deal_identities
from crm_pipelines.transform.fields import DEFAULT_FIELDS, FieldMap, map_fields, owner_map
from crm_pipelines.transform.frames import Mirrors, links_of, text
from crm_pipelines.transform.identities import ContactIdentities, contact_identities, contact_records
from crm_pipelines.transform.lifecycle import company_lifecycle, contact_lifecycle
from crm_pipelines.transform.lookup import build_lookups
from crm_pipelines.transform.rollups import contact_rollups, hubspot_deal_contacts, hubspot_deal_facts
from crm_pipelines.transform.stages import (
    StageSettings,
    deal_stage_keys,
    hubspot_stages,
    map_deal_stages,
)


@dataclass(frozen=True)
class TransformSettings:
    """What the transform needs from the YAML settings (the integrator maps ``Settings`` onto this)."""

    valid_email_only: bool = True  # CON-3
    dynamics_entities: tuple[str, ...] = ("contact", "lead")  # TOP-1, preferred first
    stages: StageSettings = field(default_factory=StageSettings)  # DEAL-2..5
    record_type_count: int | None = None  # DEAL-3; None = count the RecordType frame
    custom_fields: Mapping[tuple[str, str], tuple[FieldMap, ...]] = field(default_factory=dict)  # DEAL-1
    new_contact_type: str = "Lead"  # CON-5
    inclusion_list: tuple[str, ...] | None = None  # CON-7
    requested_accounts: tuple[str, ...] = ()  # COM-2
    dynamics_lifecycle_stage: str | None = None  # CON-9
    closed_won_sets_customer: bool = False  # DEAL-7


@dataclass
class TransformResult:
    """Everything the ``unified`` assets store. Frames, by asset:

    - ``contacts``: contact identities, members (every live record with identity and role) and the CON-11
      ambiguity findings;
    - ``companies`` (COM-1/COM-3 identities + domain findings) and ``account_candidates`` (COM-2);
    - ``deals`` (DEAL-5 identities) and ``deal_stages`` (DEAL-2..4 mapping per Opportunity/opportunity);
    - ``owners`` (matched by email), ``fields`` (typed values per (crm, object)), ``field_findings``;
    - ``contact_company``, ``deal_contact``, ``deal_company`` (DEAL-6, between identities);
    - ``deal_facts``, ``hubspot_deal_contacts`` and ``rollups`` (the SPEC rollup table);
    - ``lifecycle`` (CON-9/DEAL-7 proposals per HubSpot contact), ``company_lifecycle`` (COM-4).
    """

    contacts: ContactIdentities
    companies: CompanyIdentities
    account_candidates: pd.DataFrame
    deals: pd.DataFrame
    deal_stages: pd.DataFrame
    owners: pd.DataFrame
    fields: dict[tuple[str, str], pd.DataFrame]
    field_findings: pd.DataFrame
    contact_company: pd.DataFrame
    deal_contact: pd.DataFrame
    deal_company: pd.DataFrame
    deal_facts: pd.DataFrame
    hubspot_deal_contacts: pd.DataFrame
    rollups: pd.DataFrame
    lifecycle: pd.DataFrame
    company_lifecycle: pd.DataFrame
    hubspot_pipelines: pd.DataFrame = field(default_factory=pd.DataFrame)  # kept for incremental deal facts
    # record-level state an incremental run splices instead of re-reading the mirrors: the association
    # pairs with the record each comes from (``src``), the normalized company domains, the company links
    company_pair_src: pd.DataFrame = field(default_factory=pd.DataFrame)
    deal_contact_src: pd.DataFrame = field(default_factory=pd.DataFrame)
    deal_company_src: pd.DataFrame = field(default_factory=pd.DataFrame)
    company_domains: pd.DataFrame = field(default_factory=pd.DataFrame)
    company_links: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_transform(mirrors: Mirrors, links: pd.DataFrame | None = None,
                  settings: TransformSettings | None = None, *, release: bool = False,
                  indexes: bool = True) -> TransformResult:
    """Every output of the transform layer for one state of the mirrors (see ``TransformResult``).

    ``release``: the caller gives the mirrors up; each record frame is dropped (``Mirrors.release``) once its
    last reader is done, so the result grows into its memory (a full run at 1M people, issue 11). The steps
    are ordered for that: every reader of the associations first, the field mappings last.

    ``indexes``: build the lookups an incremental run over this result in memory reads (``build_lookups``);
    a result that is only written has no use for them (at 1M people they are hundreds of MB, issue 11)."""
    settings = settings or TransformSettings()

    def done(*keys: tuple[str, str]) -> None:
        if release:
            mirrors.release(*keys)

    records = contact_records(mirrors, settings.dynamics_entities)
    contacts = contact_identities(records, links, settings.valid_email_only)
    del records
    pair_src = company_contact_pairs(mirrors, src=True)
    dc_src = assoc.deal_contact_pairs(mirrors, src=True)
    dco_src = assoc.deal_company_pairs(mirrors, src=True)
    hs_pairs = hubspot_deal_contacts(mirrors)
    done(("hubspot", "associations"), ("salesforce", "OpportunityContactRole"))
    pairs = unique_pairs(pair_src)
    domains = company_domains(mirrors)
    companies = company_identities(mirrors, contacts.members, links, pairs, domains)
    candidates = account_creation_candidates(
        companies.identities, pairs, contacts.identities, contacts.members, settings.new_contact_type,
        settings.valid_email_only, settings.inclusion_list, settings.requested_accounts)
    deals = deal_identities(mirrors, links)
    hs_stages = hubspot_stages(mirrors)
    rt_count = settings.record_type_count
    if rt_count is None:
        rt_count = len(mirrors.live("salesforce", "RecordType"))
    stages = map_deal_stages(deal_stage_keys(mirrors), settings.stages, hs_stages, rt_count)
    owners = owner_map(mirrors)
    facts = hubspot_deal_facts(mirrors)
    live_contacts = text(mirrors.live("hubspot", "contacts")["id"]).dropna()
    lifecycle = hubspot_lifecycle(mirrors, contacts, facts, hs_pairs, settings)
    hs_companies = mirrors.live("hubspot", "companies", ["lifecyclestage"])[["id", "lifecyclestage"]]
    fields, findings = map_all_fields(mirrors, owners, settings, release=release)

    contact_ids = assoc.IdentityLookup(assoc.record_identity(contacts.members))
    company_ids = assoc.IdentityLookup(assoc.companies_as_members(companies.identities))
    deal_ids = assoc.IdentityLookup(assoc.deals_as_members(deals))
    contact_company = assoc.identity_pairs(pairs.rename(columns={"company_id": "company", "contact_id": "contact"}),
                                           "contact", "company", contact_ids, company_ids)
    deal_contact = assoc.identity_pairs(unique_pairs(dc_src).rename(
        columns={"deal_id": "deal", "contact_id": "contact"}), "deal", "contact", deal_ids, contact_ids)
    deal_company = assoc.identity_pairs(unique_pairs(dco_src).rename(
        columns={"deal_id": "deal", "company_id": "company"}), "deal", "company", deal_ids, company_ids)

    rollups = contact_rollups(facts, hs_pairs, live_contacts)
    hs_company = pairs.loc[pairs["crm"] == "hubspot", ["company_id", "contact_id"]]
    company_stage = company_lifecycle(hs_company, lifecycle[["id", "new_stage"]], hs_companies.reset_index(drop=True))
    result = TransformResult(contacts, companies, candidates, deals, stages, owners, fields, findings,
                             contact_company, deal_contact, deal_company, facts, hs_pairs, rollups, lifecycle,
                             company_stage, mirrors.get("hubspot", "pipelines"), pair_src, dc_src, dco_src, domains,
                             links_of(links, "company"))
    if indexes:
        build_lookups(result)  # the indexes an incremental run reads (carried as ``result._lookups``)
    return result


def unique_pairs(src: pd.DataFrame) -> pd.DataFrame:
    """Record pairs without their source record, once each (two sources may state one pair)."""
    return src.drop(columns="src").drop_duplicates(ignore_index=True)


def map_all_fields(mirrors: Mirrors, owners: pd.DataFrame, settings: TransformSettings, release: bool = False,
                   ) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """``release``: each object's frame is dropped once mapped (the last step reading it, ``run_transform``)."""
    fields, findings = {}, []
    for key, defaults in DEFAULT_FIELDS.items():
        maps = defaults + tuple(settings.custom_fields.get(key, ()))
        frame = mirrors.live(*key, [m.other for m in maps if m.other])
        if release:
            mirrors.release(key)
        values, f = map_fields(frame, *key, maps, owners)
        del frame
        fields[key] = values
        findings.append(f)
    return fields, pd.concat(findings, ignore_index=True)


def hubspot_lifecycle(mirrors: Mirrors, contacts: ContactIdentities, facts: pd.DataFrame, hs_pairs: pd.DataFrame,
                      settings: TransformSettings) -> pd.DataFrame:
    """CON-9 and DEAL-7 for the HubSpot contacts (COM-4 follows from these with ``company_lifecycle``)."""
    hs = mirrors.live("hubspot", "contacts", ["lifecyclestage"])[["id", "lifecyclestage"]]
    with_dyn = contacts.identities.dropna(subset=["hubspot_id", "dynamics_id"])["hubspot_id"]
    won = hs_pairs.loc[hs_pairs["deal_id"].isin(facts.loc[facts["is_won"], "deal_id"]), "contact_id"]
    return contact_lifecycle(hs.reset_index(drop=True), hs["id"].isin(with_dyn).reset_index(drop=True),
                             settings.dynamics_lifecycle_stage, won, settings.closed_won_sets_customer)

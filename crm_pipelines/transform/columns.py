"""The mirror fields the transform reads, per object: what a full run loads (issue 11: memory).

A mirror record carries every field the API returned (dozens per Salesforce object); the transform reads a
few. ``mirror_columns`` declares them: the fields the transform's steps read (``READS``, by step), plus the
source field of every field mapping (``fields.DEFAULT_FIELDS`` and the settings' custom mappings). A
``Mirrors`` built with this declaration refuses a read of an undeclared field (``Mirrors.get``), so a step
that starts reading a new field fails loudly instead of seeing it empty; a test keeps the full result equal
with and without the declaration.

Reference objects (pipelines, owners, stages, record types, users) are small and read whole: the stage
proposals and the pipelines' stage list read their nested records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crm_pipelines import catalog
from crm_pipelines.transform.fields import DEFAULT_FIELDS, FieldMap

_ASSOCIATION = ("from_type", "from_id", "to_type", "to_id")

# (crm, object) -> fields read besides ``id``, ``modified_at``, ``deleted`` and the field mappings' sources
READS: dict[tuple[str, str], tuple[str, ...]] = {
    # identities.contact_records; companies.company_contact_pairs, company_domains; pipeline.hubspot_lifecycle,
    # company_lifecycle
    ("hubspot", "contacts"): ("email", "lifecyclestage"),
    ("hubspot", "companies"): ("domain", "website", "lifecyclestage"),
    # rollups.hubspot_deal_facts
    ("hubspot", "deals"): ("pipeline", "dealstage", "amount", "closedate", "createdate"),
    # companies.company_contact_pairs, associations.deal_*_pairs, rollups.hubspot_deal_contacts
    ("hubspot", "associations"): _ASSOCIATION,
    ("salesforce", "Contact"): ("Email", "AccountId"),
    ("salesforce", "Lead"): ("Email", "IsConverted", "ConvertedContactId"),
    ("salesforce", "Account"): ("Website",),
    # associations.deal_company_pairs, stages.deal_stage_keys
    ("salesforce", "Opportunity"): ("AccountId", "RecordTypeId", "StageName", "IsClosed", "IsWon"),
    ("salesforce", "OpportunityContactRole"): ("OpportunityId", "ContactId"),
    ("dynamics", "contacts"): ("emailaddress1", "_parentcustomerid_value"),
    ("dynamics", "leads"): ("emailaddress1", "_parentaccountid_value"),
    ("dynamics", "accounts"): ("websiteurl",),
    ("dynamics", "opportunities"): ("_parentcontactid_value", "_parentaccountid_value", "statecode", "salesstage",
                                    "stepname"),
}


def mirror_columns(custom_fields: Mapping[tuple[str, str], Iterable[FieldMap]] | None = None,
                   objects: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], tuple[str, ...] | None]:
    """Per mirrored object, the fields a full transform reads (None: every field, for reference objects);
    objects the transform does not read (tasks) get ``()``: their ids and deletion flags only."""
    custom_fields = custom_fields or {}
    keys = list(objects) if objects is not None else [(o.crm, o.name) for o in catalog.OBJECTS]
    out: dict[tuple[str, str], tuple[str, ...] | None] = {}
    for key in keys:
        if catalog.get(*key).kind is catalog.Kind.REFERENCE:
            out[key] = None
            continue
        maps = (*DEFAULT_FIELDS.get(key, ()), *custom_fields.get(key, ()))
        out[key] = tuple(dict.fromkeys((*READS.get(key, ()), *(m.other for m in maps if m.other))))
    return out

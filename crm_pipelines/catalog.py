"""The catalog: every object the sync knows, per CRM, in one list that every layer reads.

The state schema builds its mirror tables from it, extraction builds one asset and one source per
extracted object from it, the transform takes its object pairings from it, and the writes find a created
record again by its ``lookup_field``. A new object is a new entry here plus a migration step that creates
its mirror table (``state/migrations.py``; migrations never read this list, so an old database upgrades
the same way whenever it runs).

Pure data: no imports from the rest of the product, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Kind(StrEnum):
    RECORDS = "records"  # partitioned by modification time; read in windows (the bulk import, incremental runs)
    REFERENCE = "reference"  # small, read whole on every run (pipelines, owners, record types, users)
    LINKS = "links"  # read alongside another object's records (HubSpot associations), no asset of its own


@dataclass(frozen=True)
class CatalogObject:
    crm: str
    name: str  # the API's own name (HubSpot object type, Salesforce sObject, Dataverse entity set)
    kind: Kind
    id_field: str
    modified_field: str | None  # the field windows and change detection read; None: no such field
    # how finely the CRM stamps that field: a change made within one step after a time is stamped before it
    modified_step: timedelta = timedelta(milliseconds=1)
    writable: bool = False  # the sync may create and update it
    # the field a create is found again by after a crash (Invariant 1): email, an external-id field, …
    lookup_field: str | None = None
    # the lookup field holds the sync's own key of the record a create copies (``<crm>:<id>``), written with the
    # create; else it is one of the record's own values (an email)
    sync_key: bool = False
    hubspot_object: str | None = None  # the HubSpot object a record of this object pairs with

    @property
    def mirror_table(self) -> str:
        return f"mirror_{self.crm}_{self.name.lower()}"

    @property
    def partitioned(self) -> bool:
        return self.kind is Kind.RECORDS

    @property
    def extracted(self) -> bool:
        """Has an extract asset of its own (``LINKS`` objects are written by their records' extract)."""
        return self.kind is not Kind.LINKS


def _hubspot(name: str, kind: Kind, modified: str | None, **kw: object) -> CatalogObject:
    return CatalogObject("hubspot", name, kind, "id", modified, **kw)  # type: ignore[arg-type]


def _salesforce(name: str, kind: Kind, **kw: object) -> CatalogObject:
    # SystemModstamp moves on every change, system ones included (FACTS §12): the replication field
    return CatalogObject("salesforce", name, kind, "Id", "SystemModstamp", **kw)  # type: ignore[arg-type]


def _dynamics(name: str, kind: Kind, id_field: str, **kw: object) -> CatalogObject:
    # the Web API gives modifiedon in whole seconds (2019-10-16T09:16:38Z), and so does the sandbox
    return CatalogObject("dynamics", name, kind, id_field, "modifiedon", timedelta(seconds=1), **kw)  # type: ignore[arg-type]


R, REF, L = Kind.RECORDS, Kind.REFERENCE, Kind.LINKS
# External_Id__c: the external-id field `crm-pipelines check` verifies (a create is found again by it)
_SF_EXT = "External_Id__c"

OBJECTS: tuple[CatalogObject, ...] = (
    # HubSpot: contacts track modification in ``lastmodifieddate``, the others in ``hs_lastmodifieddate``
    _hubspot("contacts", R, "lastmodifieddate", writable=True, lookup_field="email", hubspot_object="contacts"),
    _hubspot("companies", R, "hs_lastmodifieddate", writable=True, lookup_field="crm_pipelines_key", sync_key=True,
             hubspot_object="companies"),
    _hubspot("deals", R, "hs_lastmodifieddate", writable=True, lookup_field="crm_pipelines_key", sync_key=True,
             hubspot_object="deals"),
    _hubspot("tasks", R, "hs_lastmodifieddate", writable=True, lookup_field="crm_pipelines_key", sync_key=True,
             hubspot_object="tasks"),  # OPS-4
    _hubspot("associations", L, None),
    _hubspot("pipelines", REF, "updatedAt", writable=True),  # DEAL-3 creates pipelines
    _hubspot("owners", REF, "updatedAt"),
    _salesforce("Lead", R, writable=True, lookup_field="Email", hubspot_object="contacts"),
    _salesforce("Contact", R, writable=True, lookup_field="Email", hubspot_object="contacts"),
    _salesforce("Account", R, writable=True, lookup_field=_SF_EXT, sync_key=True, hubspot_object="companies"),
    _salesforce("Opportunity", R, writable=True, lookup_field=_SF_EXT, sync_key=True, hubspot_object="deals"),
    _salesforce("OpportunityContactRole", R, writable=True),  # DEAL-6: deal → contact
    _salesforce("Task", R, writable=True, lookup_field=_SF_EXT, sync_key=True, hubspot_object="tasks"),  # OPS-4
    _salesforce("OpportunityStage", REF),
    _salesforce("RecordType", REF),
    _salesforce("User", REF),
    _dynamics("contacts", R, "contactid", writable=True, lookup_field="emailaddress1", hubspot_object="contacts"),
    _dynamics("leads", R, "leadid", writable=True, lookup_field="emailaddress1", hubspot_object="contacts"),
    _dynamics("accounts", R, "accountid", writable=True, lookup_field="accountnumber", sync_key=True,
              hubspot_object="companies"),
    _dynamics("opportunities", R, "opportunityid", writable=True, lookup_field="crm_pipelines_key", sync_key=True,
              hubspot_object="deals"),
    _dynamics("systemusers", REF, "systemuserid"),
)  # fmt: skip

CRMS = ("hubspot", "salesforce", "dynamics")
_BY_KEY = {(o.crm, o.name): o for o in OBJECTS}


def get(crm: str, name: str) -> CatalogObject:
    try:
        return _BY_KEY[(crm, name)]
    except KeyError:
        raise KeyError(f"{crm}.{name} is not in the catalog (crm_pipelines/catalog.py)") from None


def objects(crm: str | None = None, *, extracted: bool | None = None) -> Iterator[CatalogObject]:
    for o in OBJECTS:
        if (crm is None or o.crm == crm) and (extracted is None or o.extracted == extracted):
            yield o


def paired_with(hubspot_object: str) -> set[tuple[str, str]]:
    """Every ``(crm, object)`` whose records pair with ``hubspot_object`` records, HubSpot's own included."""
    return {(o.crm, o.name) for o in OBJECTS if o.hubspot_object == hubspot_object}

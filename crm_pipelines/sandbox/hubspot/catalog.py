"""What a fresh HubSpot portal knows before any record exists: objects, properties, pipelines, limits.

Facts are from ``shared/specs/hubspot/FACTS.md`` (section numbers in comments); where FACTS marks a value
"unverified" the sandbox still picks one, and says so here.
"""

from __future__ import annotations

from crm_pipelines.sandbox.hubspot.association_types import ASSOCIATION_TYPES
from crm_pipelines.sandbox.hubspot.default_properties import default_properties
from crm_pipelines.sandbox.hubspot.definitions import ObjectType, PropertyDef
from crm_pipelines.sandbox.hubspot.standard_objects import STANDARD_OBJECT_TYPES, standard_properties

# §4: Professional tier, private app. Daily resets at midnight (the sandbox uses UTC as the account zone).
TEN_SECONDLY_LIMIT = 190
TEN_SECONDLY_WINDOW_S = 10.0
DAILY_LIMIT = 625_000
SEARCH_PER_SECOND = 5  # §2, per account, own bucket, no rate-limit headers on search responses

LIST_PAGE_MAX = 100  # §1
SEARCH_PAGE_MAX = 200  # §2
SEARCH_TOTAL_CAP = 10_000  # §2
SEARCH_MAX_GROUPS, SEARCH_MAX_FILTERS_PER_GROUP, SEARCH_MAX_FILTERS = 5, 6, 18  # §2, current guide
SEARCH_QUERY_MAX_CHARS = 3_000
BATCH_MAX_INPUTS = 100  # §3
BATCH_HISTORY_MAX_INPUTS = 50  # §1
ASSOC_BATCH_READ_MAX = 1_000  # §3
ASSOC_BATCH_WRITE_MAX = 100  # §3, unverified: "assume 100 to be safe"
ASSOC_PAGE_MAX = 500  # §1
ARCHIVE_RETENTION_DAYS = 90  # SPEC DEL-5
OAUTH_ACCESS_TOKEN_TTL_S = 1800


OBJECT_TYPES: dict[str, ObjectType] = {
    o.name: o
    for o in (
        ObjectType(
            "contacts",
            "contact",
            "0-1",
            "createdate",
            "lastmodifieddate",
            10_000_000_000,
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("firstname", "lastname", "email", "phone", "mobilephone", "company"),
        ),
        ObjectType(
            "companies",
            "company",
            "0-2",
            "createdate",
            "hs_lastmodifieddate",
            20_000_000_000,
            ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
            ("website", "phone", "name", "domain"),
        ),
        ObjectType(
            "deals",
            "deal",
            "0-3",
            "createdate",
            "hs_lastmodifieddate",
            30_000_000_000,
            (
                "dealname",
                "amount",
                "closedate",
                "pipeline",
                "dealstage",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ),
            ("dealname", "pipeline", "dealstage", "description", "dealtype"),
        ),
        ObjectType(
            "tasks",
            "task",
            "0-27",
            "hs_createdate",
            "hs_lastmodifieddate",
            40_000_000_000,
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            ("hs_task_body", "hs_task_subject"),
            required_on_create=("hs_timestamp",),
        ),
        *STANDARD_OBJECT_TYPES,
    )
}
# The four the universe fills with records; the others answer, empty until a client writes to them.
SEEDED_OBJECT_TYPES = ("contacts", "companies", "deals", "tasks")

_ALIASES = {alias: o.name for o in OBJECT_TYPES.values() for alias in (o.name, o.singular, o.type_id) if alias}


def object_type(segment: str) -> ObjectType | None:
    """Paths accept the plural, singular or numeric type id (``contacts``, ``contact``, ``0-1``)."""
    name = _ALIASES.get(segment.lower())
    return OBJECT_TYPES[name] if name else None


def inverse_type_id(from_type: str, to_type: str, type_id: int) -> int | None:
    """The HUBSPOT_DEFINED type id of the same association seen from the other side."""
    pair, back = ASSOCIATION_TYPES.get((from_type, to_type)), ASSOCIATION_TYPES.get((to_type, from_type))
    if not pair or not back:
        return None
    if type_id == pair[0]:
        return back[0]
    if pair[1] is not None and type_id == pair[1]:
        return back[1]
    return None


def association_label(from_type: str, to_type: str, type_id: int) -> str | None:
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    return "Primary" if pair and pair[1] == type_id else None


def v3_association_type_name(from_type: str, to_type: str, type_id: int, category: str = "HUBSPOT_DEFINED") -> str:
    """The ``type`` string of v3 ``associations`` blocks: ``contact_to_company`` (the primary, or the only
    HubSpot-defined type of a pair without one), ``contact_to_company_unlabeled`` (the default beside a primary),
    and for any other type its label's name (a user label "Facilitator" shows as ``facilitator``; the sandbox
    has no label names, so ``label_<typeId>``)."""
    frm, to = OBJECT_TYPES[from_type].singular, OBJECT_TYPES[to_type].singular
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    if category != "HUBSPOT_DEFINED" or pair is None or type_id not in pair:
        return f"label_{type_id}"
    if pair[1] is not None and type_id == pair[0]:
        return f"{frm}_to_{to}_unlabeled"
    return f"{frm}_to_{to}"


def _text(name: str, label: str, group: str, **kw) -> PropertyDef:
    return PropertyDef(name, label, "string", "text", group, **kw)


LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)


def _system_props(o: ObjectType) -> list[PropertyDef]:
    group = f"{o.singular}information"
    return [
        PropertyDef(
            "hs_object_id",
            "Record ID",
            "number",
            "number",
            group,
            read_only=True,
            description="The unique ID for this record. This value is set automatically by HubSpot.",
        ),
        PropertyDef(
            o.created_prop, "Create Date", "datetime", "date", group, description="The date the record was created"
        ),
        PropertyDef(
            o.modified_prop,
            "Last Modified Date",
            "datetime",
            "date",
            group,
            read_only=True,
            description="Most recent timestamp of any property update for this record",
        ),
    ]


def base_properties() -> dict[str, dict[str, PropertyDef]]:
    """Property definitions per object type (a portal's built-in properties; custom ones are added live)."""
    owner = PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", "", extra={"owner": True})
    contacts = [
        _text("email", "Email", "contactinformation", unique=True),
        _text("firstname", "First Name", "contactinformation"),
        _text("lastname", "Last Name", "contactinformation"),
        _text("phone", "Phone Number", "contactinformation"),
        _text("mobilephone", "Mobile Phone Number", "contactinformation"),
        _text("jobtitle", "Job Title", "contactinformation"),
        _text("company", "Company Name", "contactinformation"),
        _text("website", "Website URL", "contactinformation"),
        _text("address", "Street Address", "contactinformation"),
        _text("city", "City", "contactinformation"),
        _text("state", "State/Region", "contactinformation"),
        _text("zip", "Postal Code", "contactinformation"),
        _text("country", "Country/Region", "contactinformation"),
        PropertyDef(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", options=LIFECYCLE_STAGES
        ),
        PropertyDef(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "radio",
            "sales_properties",
            options=(
                ("NEW", "New"),
                ("OPEN", "Open"),
                ("IN_PROGRESS", "In Progress"),
                ("UNQUALIFIED", "Unqualified"),
                ("CONNECTED", "Connected"),
            ),
        ),
    ]
    companies = [
        _text("name", "Company name", "companyinformation"),
        _text("domain", "Company Domain Name", "companyinformation"),
        _text("website", "Website URL", "companyinformation"),
        _text("phone", "Phone Number", "companyinformation"),
        _text("address", "Street Address", "companyinformation"),
        _text("city", "City", "companyinformation"),
        _text("state", "State/Region", "companyinformation"),
        _text("zip", "Postal Code", "companyinformation"),
        _text("country", "Country/Region", "companyinformation"),
        _text("industry", "Industry", "companyinformation"),
        PropertyDef("numberofemployees", "Number of Employees", "number", "number", "companyinformation"),
        PropertyDef("annualrevenue", "Annual Revenue", "number", "number", "companyinformation"),
        PropertyDef("description", "Description", "string", "textarea", "companyinformation"),
        PropertyDef(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "companyinformation", options=LIFECYCLE_STAGES
        ),
    ]
    deals = [
        _text("dealname", "Deal Name", "dealinformation"),
        PropertyDef("amount", "Amount", "number", "number", "dealinformation"),
        PropertyDef("closedate", "Close Date", "datetime", "date", "dealinformation"),
        PropertyDef("pipeline", "Pipeline", "enumeration", "select", "dealinformation", extra={"pipeline": True}),
        PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", extra={"stage": True}),
        PropertyDef(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            "dealinformation",
            options=(("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
        ),
        PropertyDef("description", "Deal Description", "string", "textarea", "dealinformation"),
        PropertyDef(
            "deal_currency_code",
            "Currency",
            "enumeration",
            "select",
            "dealinformation",
            options=(("USD", "US Dollar"), ("EUR", "Euro"), ("GBP", "British Pound")),
        ),
    ]
    tasks = [
        _text("hs_task_subject", "Task Title", "task"),
        PropertyDef("hs_task_body", "Task notes", "string", "textarea", "task"),
        PropertyDef("hs_timestamp", "Due date", "datetime", "date", "task"),
        PropertyDef(
            "hs_task_status",
            "Task Status",
            "enumeration",
            "select",
            "task",
            options=(
                ("NOT_STARTED", "Not Started"),
                ("IN_PROGRESS", "In Progress"),
                ("WAITING", "Waiting"),
                ("COMPLETED", "Completed"),
                ("DEFERRED", "Deferred"),
            ),
        ),
        PropertyDef(
            "hs_task_priority",
            "Priority",
            "enumeration",
            "select",
            "task",
            options=(("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")),
        ),
        PropertyDef(
            "hs_task_type",
            "Task Type",
            "enumeration",
            "select",
            "task",
            options=(("CALL", "Call"), ("EMAIL", "Email"), ("TODO", "To-do")),
        ),
    ]
    result: dict[str, dict[str, PropertyDef]] = {}
    own = {"contacts": contacts, "companies": companies, "deals": deals, "tasks": tasks}
    for o in OBJECT_TYPES.values():
        props = own.get(o.name) or standard_properties(o.name)
        owner_prop = PropertyDef(
            owner.name, owner.label, owner.type, owner.field_type, f"{o.singular}information", extra=owner.extra
        )
        # the hand-written ones (what the data fills) win over the bulk catalogue of defaults
        result[o.name] = {p.name: p for p in [*default_properties(o.name), *_system_props(o), *props, owner_prop]}
    return result


# Custom properties the portal's admin made before connecting crm_pipelines, stored as the properties API's
# create bodies (custom, not HubSpot-defined, so archivable): the key a created company, deal or task is found
# again by after a crash (issue 13). HubSpot offers unique values on companies and deals ("Unique Properties
# support for newly created Contact properties", developers.hubspot.com changelog: companies, deals, tickets
# and custom objects had it before contacts); not known for tasks, so the task one is a plain searchable text.
LOOKUP_KEY_PROPERTY = "crm_pipelines_key"
ADMIN_PROPERTIES: dict[str, dict] = {
    object_type: {
        "name": LOOKUP_KEY_PROPERTY,
        "label": "crm_pipelines key",
        "type": "string",
        "fieldType": "text",
        "groupName": group,
        "description": "Set by crm_pipelines when it creates the record; finds it again after a crash.",
        "hasUniqueValue": unique,
    }
    for object_type, group, unique in (
        ("companies", "companyinformation", True),
        ("deals", "dealinformation", True),
        ("tasks", "task", False),
    )
}


# The universe's pipelines rendered as HubSpot deal pipelines. "sales" is the portal's default pipeline
# (§11, stage ids and probabilities secondary/unverified); "enterprise" is a custom one with numeric ids.
HUBSPOT_PIPELINES: dict[str, dict] = {
    "sales": {
        "id": "default",
        "label": "Sales Pipeline",
        "stages": {
            "appointment": ("appointmentscheduled", "Appointment Scheduled", "0.2"),
            "qualified": ("qualifiedtobuy", "Qualified To Buy", "0.4"),
            "presentation": ("presentationscheduled", "Presentation Scheduled", "0.6"),
            "decision": ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
            "contract": ("contractsent", "Contract Sent", "0.9"),
            "won": ("closedwon", "Closed Won", "1.0"),
            "lost": ("closedlost", "Closed Lost", "0.0"),
        },
    },
    "enterprise": {
        "id": "75880212",
        "label": "Enterprise Pipeline",
        "stages": {
            "discovery": ("158013701", "Discovery", "0.1"),
            "solution": ("158013702", "Solution Design", "0.3"),
            "proposal": ("158013703", "Proposal", "0.5"),
            "negotiation": ("158013704", "Negotiation", "0.7"),
            "won": ("158013705", "Won", "1.0"),
            "lost": ("158013706", "Lost", "0.0"),
        },
    },
}

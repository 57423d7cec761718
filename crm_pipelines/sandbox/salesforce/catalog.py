"""The org's schema: the sObjects this sandbox serves, their fields, stages, record types (FACTS §11, §12).

One ``Field`` list per object drives everything else: the SQLite columns, describe, SOQL name resolution
and write validation, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

API_VERSIONS = ("58.0", "59.0", "60.0", "61.0", "62.0", "63.0", "64.0")
VERSION_LABELS = {"58.0": "Summer '23", "59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24",
                  "62.0": "Winter '25", "63.0": "Spring '25", "64.0": "Summer '25"}
LATEST = API_VERSIONS[-1]
ORG_ID = "00D8d0000000001EAA"
DAILY_API_REQUESTS = 100_000  # the 100,000 base of the allocation formula (FACTS §4)
QUERY_BATCH = 2_000  # default and maximum batch of query / queryAll (FACTS §5)
COLLECTION_MAX = 200  # records per sObject Collections call (FACTS §9)

KEY_PREFIXES = {
    "Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "User": "005", "Task": "00T",
    "RecordType": "012", "OpportunityContactRole": "00K", "OpportunityStage": "01J",
}
STRING_SQL = "TEXT COLLATE NOCASE"  # SOQL compares text case-insensitively


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # describe's type: id, string, email, phone, url, picklist, reference, boolean, currency, ...
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    required: bool = False  # REQUIRED_FIELD_MISSING on create when absent (and on update when nulled)
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    external_id: bool = False
    unique: bool = False
    default: object = None
    needs_picklists: bool = False  # exists only while the org has state and country picklists on
    compound_name: str | None = None  # the compound field this one is a component of (MailingAddress)
    address_prefix: str | None = None  # set on a compound address field: its components' prefix ("Mailing")

    @property
    def compound(self) -> bool:
        """A compound field has no column of its own; it is read from its components (FACTS §16)."""
        return self.address_prefix is not None

    @property
    def sql_type(self) -> str:
        if self.type in ("boolean", "int"):
            return "INTEGER"
        if self.type in ("currency", "double", "percent"):
            return "REAL"
        if self.type in ("id", "reference", "datetime", "date"):
            return "TEXT"
        return STRING_SQL

    @property
    def soap_type(self) -> str:
        return {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
                "currency": "xsd:double", "double": "xsd:double", "percent": "xsd:double",
                "date": "xsd:date", "datetime": "xsd:dateTime"}.get(self.type, "xsd:string")


def _s(name: str, length: int = 80, **kw: object) -> Field:
    return Field(name, "string", length=length, **kw)  # type: ignore[arg-type]


def _ro(name: str, type_: str, **kw: object) -> Field:
    return Field(name, type_, createable=False, updateable=False, **kw)  # type: ignore[arg-type]


def _ref(name: str, to: str, relationship: str, **kw: object) -> Field:
    return Field(name, "reference", length=18, reference_to=(to,), relationship=relationship, **kw)  # type: ignore


def _audit(owned: bool) -> list[Field]:
    fields = [
        Field("Id", "id", length=18, nillable=False, createable=False, updateable=False),
        _ro("IsDeleted", "boolean", nillable=False),
        _ro("CreatedDate", "datetime", nillable=False),
        _ro("CreatedById", "reference", length=18, nillable=False, reference_to=("User",), relationship="CreatedBy"),
        _ro("LastModifiedDate", "datetime", nillable=False),
        _ro("LastModifiedById", "reference", length=18, nillable=False, reference_to=("User",),
            relationship="LastModifiedBy"),
        _ro("SystemModstamp", "datetime", nillable=False),
    ]
    if owned:
        fields.append(_ref("OwnerId", "User", "Owner", nillable=False))
    return fields


# The custom field an admin makes for crm_pipelines on each object it creates records of: a created record is
# found again by it after a crash (issue 13), and `crm-pipelines check` asks describe for it.
EXTERNAL_ID = _s("External_Id__c", 255, external_id=True, unique=True, label="External Id")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
INDUSTRIES = ("Agriculture", "Banking", "Consulting", "Education", "Energy", "Finance", "Healthcare",
              "Manufacturing", "Media", "Retail", "Software", "Technology", "Telecommunications", "Other")
OPP_TYPES = ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement",
             "Existing Customer - Downgrade")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


@dataclass(frozen=True)
class Stage:
    api_name: str
    probability: int
    forecast: str  # ForecastCategoryName
    closed: bool
    won: bool
    sort: int


STAGES = {
    s.api_name: s
    for s in [
        Stage("Prospecting", 10, "Pipeline", False, False, 1),
        Stage("Qualification", 10, "Pipeline", False, False, 2),
        Stage("Needs Analysis", 20, "Pipeline", False, False, 3),
        Stage("Value Proposition", 50, "Pipeline", False, False, 4),
        Stage("Id. Decision Makers", 60, "Pipeline", False, False, 5),
        Stage("Perception Analysis", 70, "Pipeline", False, False, 6),
        Stage("Proposal/Price Quote", 75, "Pipeline", False, False, 7),
        Stage("Negotiation/Review", 90, "Commit", False, False, 8),
        Stage("Closed Won", 100, "Closed", True, True, 9),
        Stage("Closed Lost", 0, "Omitted", True, False, 10),
    ]
}


@dataclass(frozen=True)
class RecordTypeDef:
    developer_name: str
    name: str
    sequence: int
    stages: tuple[str, ...]  # the record type's sales process, in order
    universe_stages: dict[str, str]  # universe stage -> StageName


# Two Opportunity record types, each with its own sales process (issue 3: "their own stage sets").
RECORD_TYPES = {
    "sales": RecordTypeDef(
        "Sales", "Sales", 1,
        ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review",
         "Closed Won", "Closed Lost"),
        {"appointment": "Prospecting", "qualified": "Qualification", "presentation": "Needs Analysis",
         "decision": "Proposal/Price Quote", "contract": "Negotiation/Review", "won": "Closed Won",
         "lost": "Closed Lost"},
    ),
    "enterprise": RecordTypeDef(
        "Enterprise", "Enterprise", 2,
        ("Id. Decision Makers", "Value Proposition", "Perception Analysis", "Negotiation/Review", "Closed Won",
         "Closed Lost"),
        {"discovery": "Id. Decision Makers", "solution": "Value Proposition", "proposal": "Perception Analysis",
         "negotiation": "Negotiation/Review", "won": "Closed Won", "lost": "Closed Lost"},
    ),
}

# With state and country picklists on (a per-org setting), these are the valid values (FACTS §13).
COUNTRIES = {"US": "United States", "DE": "Germany", "FR": "France", "ES": "Spain", "PL": "Poland",
             "TR": "Turkey", "GB": "United Kingdom", "IE": "Ireland", "CA": "Canada"}
STATES = {"US": {"CA": "California", "NY": "New York", "TX": "Texas", "WA": "Washington", "MA": "Massachusetts",
                 "IL": "Illinois", "FL": "Florida"},
          "CA": {"ON": "Ontario", "QC": "Quebec", "BC": "British Columbia", "AB": "Alberta"}}
STATE_CODES = tuple(sorted({code for states in STATES.values() for code in states}))
ADDRESS_PREFIXES = ("Billing", "Shipping", "Mailing", "Other", "")
GEOCODE_ACCURACIES = ("Address", "NearAddress", "Block", "Street", "ExtendedZip", "Zip", "Neighborhood", "City",
                      "County", "State", "Unknown")
# The compound value's keys (REST/SOAP, API 30.0+) and the component field each reads, by suffix (FACTS §16).
ADDRESS_PARTS = (("city", "City"), ("country", "Country"), ("countryCode", "CountryCode"),
                 ("geocodeAccuracy", "GeocodeAccuracy"), ("latitude", "Latitude"), ("longitude", "Longitude"),
                 ("postalCode", "PostalCode"), ("state", "State"), ("stateCode", "StateCode"), ("street", "Street"))


def _address(prefix: str) -> list[Field]:
    """The components of a standard address, then the read-only compound ``<prefix>Address`` (type address)."""
    codes = dict(needs_picklists=True, restricted=True, length=10)
    compound = f"{prefix}Address"
    parts = [_s(f"{prefix}Street", 255), _s(f"{prefix}City", 40), _s(f"{prefix}State", 80),
             _s(f"{prefix}PostalCode", 20), _s(f"{prefix}Country", 80),
             Field(f"{prefix}StateCode", "picklist", picklist=STATE_CODES, **codes),  # type: ignore[arg-type]
             Field(f"{prefix}CountryCode", "picklist", picklist=tuple(COUNTRIES), **codes),  # type: ignore[arg-type]
             Field(f"{prefix}Latitude", "double"), Field(f"{prefix}Longitude", "double"),
             Field(f"{prefix}GeocodeAccuracy", "picklist", length=40, picklist=GEOCODE_ACCURACIES, restricted=True)]
    parts = [replace(f, compound_name=compound) for f in parts]
    return [*parts, Field(compound, "address", createable=False, updateable=False, address_prefix=prefix)]


OBJECT_FIELDS: dict[str, list[Field]] = {
    "User": [
        *_audit(False),
        Field("Username", "string", length=80, nillable=False, required=True, unique=True),
        _s("FirstName", 40), Field("LastName", "string", length=80, nillable=False, required=True),
        _ro("Name", "string", length=121),
        Field("Email", "email", length=128, nillable=False, required=True),
        _s("Alias", 8), Field("IsActive", "boolean", nillable=False, default=True),
        _s("TimeZoneSidKey", 40), _ro("UserType", "picklist", picklist=("Standard",)),
    ],
    "RecordType": [
        *_audit(False),
        _ro("Name", "string", length=80), _ro("DeveloperName", "string", length=80),
        _ro("SobjectType", "picklist", picklist=("Opportunity",)), _ro("IsActive", "boolean", nillable=False),
        _ro("Description", "string", length=255),
    ],
    "OpportunityStage": [
        *_audit(False),
        _ro("ApiName", "string", length=255), _ro("MasterLabel", "string", length=255),
        _ro("IsActive", "boolean", nillable=False), _ro("IsClosed", "boolean", nillable=False),
        _ro("IsWon", "boolean", nillable=False), _ro("DefaultProbability", "percent"),
        _ro("ForecastCategoryName", "picklist", picklist=("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
        _ro("SortOrder", "int"),
    ],
    "Account": [
        *_audit(True),
        Field("Name", "string", length=255, nillable=False, required=True),
        Field("Type", "picklist", length=255, picklist=("Prospect", "Customer", "Partner", "Other")),
        _ref("ParentId", "Account", "Parent"),
        Field("Website", "url", length=255), Field("Phone", "phone", length=40),
        Field("Industry", "picklist", length=255, picklist=INDUSTRIES),
        Field("NumberOfEmployees", "int"), Field("AnnualRevenue", "currency"),
        *_address("Billing"), *_address("Shipping"), Field("Description", "textarea", length=32000), EXTERNAL_ID,
    ],
    "Contact": [
        *_audit(True),
        _ref("AccountId", "Account", "Account"),
        _s("FirstName", 40), Field("LastName", "string", length=80, nillable=False, required=True),
        _ro("Name", "string", length=121), _s("Title", 128),
        Field("Email", "email", length=80), Field("Phone", "phone", length=40),
        Field("MobilePhone", "phone", length=40), *_address("Mailing"), *_address("Other"),
        Field("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        Field("HasOptedOutOfEmail", "boolean", nillable=False, default=False),
        _ref("ReportsToId", "Contact", "ReportsTo"), EXTERNAL_ID,
    ],
    "Lead": [
        *_audit(True),
        _s("FirstName", 40), Field("LastName", "string", length=80, nillable=False, required=True),
        _ro("Name", "string", length=121), _s("Title", 128),
        Field("Company", "string", length=255, nillable=False, required=True),
        Field("Email", "email", length=80), Field("Phone", "phone", length=40),
        Field("MobilePhone", "phone", length=40), Field("Website", "url", length=255), *_address(""),
        Field("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        Field("Status", "picklist", length=255, nillable=False, picklist=LEAD_STATUSES, restricted=True,
              default=LEAD_STATUSES[0]),
        Field("Industry", "picklist", length=255, picklist=INDUSTRIES),
        Field("HasOptedOutOfEmail", "boolean", nillable=False, default=False),
        _ro("IsConverted", "boolean", nillable=False), _ro("ConvertedDate", "date"),
        _ro("ConvertedAccountId", "reference", length=18, reference_to=("Account",),
            relationship="ConvertedAccount"),
        _ro("ConvertedContactId", "reference", length=18, reference_to=("Contact",),
            relationship="ConvertedContact"),
        _ro("ConvertedOpportunityId", "reference", length=18, reference_to=("Opportunity",),
            relationship="ConvertedOpportunity"),
        EXTERNAL_ID,
    ],
    "Opportunity": [
        *_audit(True),
        _ref("AccountId", "Account", "Account"),
        _ref("RecordTypeId", "RecordType", "RecordType"),
        Field("Name", "string", length=120, nillable=False, required=True),
        Field("Description", "textarea", length=32000),
        Field("StageName", "picklist", length=255, nillable=False, required=True, picklist=tuple(STAGES),
              restricted=True),
        Field("Amount", "currency"), Field("Probability", "percent"),
        _ro("ExpectedRevenue", "currency"),
        Field("CloseDate", "date", nillable=False, required=True),
        Field("Type", "picklist", length=255, picklist=OPP_TYPES),
        Field("NextStep", "string", length=255),
        Field("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        _ro("IsClosed", "boolean", nillable=False), _ro("IsWon", "boolean", nillable=False),
        Field("ForecastCategoryName", "picklist", length=255,
              picklist=("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
        EXTERNAL_ID,
    ],
    "OpportunityContactRole": [
        *_audit(False),
        Field("OpportunityId", "reference", length=18, nillable=False, required=True, updateable=False,
              reference_to=("Opportunity",), relationship="Opportunity"),
        Field("ContactId", "reference", length=18, nillable=False, required=True, reference_to=("Contact",),
              relationship="Contact"),
        Field("Role", "picklist", length=40, picklist=("Business User", "Decision Maker", "Economic Buyer",
                                                     "Economic Decision Maker", "Evaluator", "Influencer",
                                                     "Technical Buyer", "Other")),
        Field("IsPrimary", "boolean", nillable=False, default=False),
    ],
    "Task": [
        *_audit(True),
        Field("WhoId", "reference", length=18, reference_to=("Contact", "Lead"), relationship="Who"),
        Field("WhatId", "reference", length=18, reference_to=("Account", "Opportunity"), relationship="What"),
        Field("Subject", "combobox", length=255), Field("ActivityDate", "date"),
        Field("Status", "picklist", length=40, nillable=False, picklist=TASK_STATUSES, restricted=True,
              default="Not Started"),
        Field("Priority", "picklist", length=40, nillable=False, picklist=("High", "Normal", "Low"),
              default="Normal"),
        _ro("IsClosed", "boolean", nillable=False),
        Field("Description", "textarea", length=32000),
        Field("Type", "picklist", length=40, picklist=("Call", "Email", "Meeting", "Other")),
        # an Activity custom field (Task and Event share them); a HubSpot task's copy is found by it (OPS-4)
        EXTERNAL_ID,
    ],
}

# Read-only objects (query, describe, retrieve only).
QUERY_ONLY = {"OpportunityStage", "RecordType", "User"}
OBJECTS = tuple(OBJECT_FIELDS)
LABELS = {"OpportunityContactRole": "Opportunity Contact Role", "OpportunityStage": "Opportunity Stage",
          "RecordType": "Record Type"}
PLURALS = {"Opportunity": "Opportunities", "OpportunityContactRole": "Opportunity Contact Role",
           "OpportunityStage": "Opportunity Stage", "RecordType": "Record Types"}


@dataclass(frozen=True)
class ObjectDef:
    name: str
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    def lookup(self, name: str, picklists: bool = True) -> Field | None:
        """Field names are case-insensitive in SOQL and in JSON bodies; ``picklists`` = the org setting."""
        f = self.fields.get(name.lower())
        return None if f is None or (f.needs_picklists and not picklists) else f

    @property
    def ordered(self) -> list[Field]:
        return list(self.fields.values())

    @property
    def columns(self) -> list[Field]:
        """The fields stored as columns: every field but the compound ones."""
        return [f for f in self.fields.values() if not f.compound]

    def visible(self, picklists: bool) -> list[Field]:
        return [f for f in self.fields.values() if picklists or not f.needs_picklists]


SOBJECTS: dict[str, ObjectDef] = {
    name: ObjectDef(name, {f.name.lower(): f for f in fields}) for name, fields in OBJECT_FIELDS.items()
}
_BY_LOWER = {name.lower(): o for name, o in SOBJECTS.items()}
PREFIX_TO_OBJECT = {o.key_prefix: o.name for o in SOBJECTS.values()}


def sobject(name: str) -> ObjectDef | None:
    return _BY_LOWER.get(name.lower())


def label_of(f: Field) -> str:
    if f.label:
        return f.label
    if f.type == "reference" and f.name.endswith("Id") and f.name != "Id":
        return _words(f.name[:-2]) + " ID"
    return "Record ID" if f.name == "Id" else _words(f.name)


def _words(name: str) -> str:
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out += " "
        out += ch
    return out

"""The tables the Dynamics sandbox serves and what Dataverse says about them (FACTS §C, §I).

One :class:`Table` per standard table: its logical name, entity set, primary key, columns with their
Dataverse attribute types, option sets, single-valued navigation properties and alternate keys. The
store builds its SQLite schema from this, the query layer validates ``$select``/``$filter`` against it, and
the metadata endpoints (``EntityDefinitions``) render it, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

API_PATH = "/api/data/v9.2"
PAGE_MAX = 5000  # default and maximum odata.maxpagesize (FACTS §C)
COUNT_MAX = 5000  # $count is capped here (FACTS §C)
BATCH_MAX = 1000  # requests per $batch (FACTS §F)
CHANGE_TRACKING_DAYS = 7  # Organization.ExpireChangeTrackingInDays default (FACTS §G)
LANGUAGE = 1033

# Service protection limits, per user, 300 s sliding window (FACTS §H).
WINDOW_S = 300
REQUESTS_PER_WINDOW = 6000
EXECUTION_MS_PER_WINDOW = 1_200_000
CONCURRENT_REQUESTS = 52

# The custom column an org's admin makes for crm_pipelines on opportunities (accounts use accountnumber).
LOOKUP_KEY_COLUMN = "crm_pipelines_key"

# Attribute types that are text in SQLite and compare case-insensitively, as SQL Server's default collation.
TEXT_TYPES = {"String", "Memo"}


@dataclass(frozen=True)
class Option:
    value: int
    label: str
    state: int | None = None  # for statuscode options: the statecode they belong to


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str  # Dataverse AttributeType: String, Memo, Integer, Money, DateTime, Picklist, State, Status, ...
    targets: tuple[str, ...] = ()  # lookups: logical names of the tables referenced
    options: tuple[Option, ...] = ()
    date_only: bool = False
    read_only: bool = False  # computed or system-set: ignored/refused on write
    max_length: int | None = None
    # a column an org's admin made (IsCustomAttribute): its logical name starts with a publisher's prefix
    custom: bool = False

    @property
    def is_lookup(self) -> bool:
        return self.type in ("Lookup", "Customer", "Owner")

    @property
    def column(self) -> str:
        """The Web API property (and SQLite column): lookups read as ``_<name>_value`` (FACTS §C)."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    @property
    def odata_type(self) -> str:
        return {
            "Uniqueidentifier": "Edm.Guid",
            "String": "Edm.String",
            "Memo": "Edm.String",
            "Integer": "Edm.Int32",
            "BigInt": "Edm.Int64",
            "Money": "Edm.Decimal",
            "Decimal": "Edm.Decimal",
            "Double": "Edm.Double",
            "Boolean": "Edm.Boolean",
            "Picklist": "Edm.Int32",
            "State": "Edm.Int32",
            "Status": "Edm.Int32",
            "Lookup": "Edm.Guid",
            "Customer": "Edm.Guid",
            "Owner": "Edm.Guid",
            "DateTime": "Edm.Date" if self.date_only else "Edm.DateTimeOffset",
        }[self.type]

    def label(self, value: int | None) -> str | None:
        for o in self.options:
            if o.value == value:
                return o.label
        return None


@dataclass(frozen=True)
class NavProperty:
    """A single-valued navigation property: ``<name>@odata.bind`` on write, ``$expand=<name>`` on read."""

    name: str
    attribute: str  # the lookup attribute it sets
    target: str  # logical name of the referenced table


@dataclass(frozen=True)
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    object_type_code: int
    metadata_id: str
    attributes: tuple[Attribute, ...]
    navigation: tuple[NavProperty, ...] = ()
    alternate_keys: tuple[tuple[str, ...], ...] = ()
    by_name: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)
    by_column: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({a.name: a for a in self.attributes})
        self.by_column.update({a.column: a for a in self.attributes})

    @property
    def schema_name(self) -> str:
        return self.logical_name.capitalize() if self.logical_name != "systemuser" else "SystemUser"

    @property
    def entity_type(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"

    def nav(self, name: str) -> NavProperty | None:
        for n in self.navigation:
            if n.name == name:
                return n
        return None

    def lookups(self) -> list[Attribute]:
        return [a for a in self.attributes if a.is_lookup]


def _state(*labels: str) -> Attribute:
    return Attribute("statecode", "State", options=tuple(Option(i, t) for i, t in enumerate(labels)))


def _status(*options: tuple[int, str, int]) -> Attribute:
    return Attribute("statuscode", "Status", options=tuple(Option(v, t, s) for v, t, s in options))


def _common(pk: str) -> list[Attribute]:
    return [
        Attribute(pk, "Uniqueidentifier"),
        Attribute("createdon", "DateTime", read_only=True),
        Attribute("modifiedon", "DateTime", read_only=True),
        Attribute("versionnumber", "BigInt", read_only=True),
    ]


def _address() -> list[Attribute]:
    return [
        Attribute("address1_city", "String", max_length=80),
        Attribute("address1_stateorprovince", "String", max_length=50),
        Attribute("address1_country", "String", max_length=80),
    ]


OWNER = Attribute("ownerid", "Owner", targets=("systemuser",))
CURRENCY = Attribute("transactioncurrencyid", "Lookup", targets=("transactioncurrency",))

# Transaction currencies are referenced, not served: a fixed id per ISO code (name, symbol).
CURRENCIES = {
    "USD": ("5e2d1b21-6a43-4f6e-9d1f-0000000000d1", "US Dollar", "$"),
    "EUR": ("5e2d1b21-6a43-4f6e-9d1f-0000000000e1", "Euro", "€"),
}

# The sync's sales pipeline as Dynamics' salesstage + business-process-flow step (FACTS §I).
SALES_STAGES = (Option(0, "Qualify"), Option(1, "Develop"), Option(2, "Propose"), Option(3, "Close"))
STEP_NAMES = {0: "1-Qualify", 1: "2-Develop", 2: "3-Propose", 3: "4-Close"}

CONTACT = Table(
    "contact", "contacts", "contactid", "fullname", 2, "608861bc-50a4-4c5f-a02c-21fe1943e2cf",
    (
        *_common("contactid"),
        Attribute("firstname", "String", max_length=50),
        Attribute("lastname", "String", max_length=50),
        Attribute("fullname", "String", read_only=True, max_length=160),
        Attribute("emailaddress1", "String", max_length=100),
        Attribute("telephone1", "String", max_length=50),
        Attribute("mobilephone", "String", max_length=50),
        Attribute("jobtitle", "String", max_length=100),
        Attribute("description", "Memo", max_length=2000),
        *_address(),
        Attribute("parentcustomerid", "Customer", targets=("account", "contact")),
        OWNER,
        _state("Active", "Inactive"),
        _status((1, "Active", 0), (2, "Inactive", 1)),
    ),
    (
        NavProperty("parentcustomerid_account", "parentcustomerid", "account"),
        NavProperty("parentcustomerid_contact", "parentcustomerid", "contact"),
        NavProperty("ownerid", "ownerid", "systemuser"),
    ),
    # Not standard: an email key a sync can upsert on (FACTS §A9 uses it as the SDK's example).
    alternate_keys=(("emailaddress1",),),
)

LEAD = Table(
    "lead", "leads", "leadid", "fullname", 4, "e1e1a0e0-5c5c-4a24-9d2f-8f4f1a6b0c11",
    (
        *_common("leadid"),
        Attribute("subject", "String", max_length=300),
        Attribute("firstname", "String", max_length=50),
        Attribute("lastname", "String", max_length=50),
        Attribute("fullname", "String", read_only=True, max_length=160),
        Attribute("companyname", "String", max_length=100),
        Attribute("emailaddress1", "String", max_length=100),
        Attribute("telephone1", "String", max_length=50),
        Attribute("jobtitle", "String", max_length=100),
        *_address(),
        Attribute(
            "leadsourcecode", "Picklist",
            options=(Option(1, "Advertisement"), Option(2, "Employee Referral"), Option(3, "External Referral"),
                     Option(4, "Partner"), Option(5, "Public Relations"), Option(6, "Seminar"),
                     Option(7, "Trade Show"), Option(8, "Web"), Option(9, "Word of Mouth"), Option(10, "Other")),
        ),
        Attribute("parentaccountid", "Lookup", targets=("account",)),
        Attribute("parentcontactid", "Lookup", targets=("contact",)),
        OWNER,
        _state("Open", "Qualified", "Disqualified"),
        _status((1, "New", 0), (2, "Contacted", 0), (3, "Qualified", 1), (4, "Lost", 2),
                (5, "Cannot Contact", 2), (6, "No Longer Interested", 2), (7, "Canceled", 2)),
    ),
    (
        NavProperty("parentaccountid", "parentaccountid", "account"),
        NavProperty("parentcontactid", "parentcontactid", "contact"),
        NavProperty("ownerid", "ownerid", "systemuser"),
    ),
)

ACCOUNT = Table(
    "account", "accounts", "accountid", "name", 1, "70816501-edb9-4740-a16c-6a5efbc05d84",
    (
        *_common("accountid"),
        Attribute("name", "String", max_length=160),
        Attribute("accountnumber", "String", max_length=20),
        Attribute("websiteurl", "String", max_length=200),
        Attribute("telephone1", "String", max_length=50),
        Attribute("emailaddress1", "String", max_length=100),
        Attribute("numberofemployees", "Integer"),
        Attribute("revenue", "Money"),
        Attribute("description", "Memo", max_length=2000),
        *_address(),
        Attribute("primarycontactid", "Lookup", targets=("contact",)),
        Attribute("parentaccountid", "Lookup", targets=("account",)),
        OWNER,
        CURRENCY,
        _state("Active", "Inactive"),
        _status((1, "Active", 0), (2, "Inactive", 1)),
    ),
    (
        NavProperty("primarycontactid", "primarycontactid", "contact"),
        NavProperty("parentaccountid", "parentaccountid", "account"),
        NavProperty("ownerid", "ownerid", "systemuser"),
    ),
    alternate_keys=(("accountnumber",),),
)

OPPORTUNITY = Table(
    "opportunity", "opportunities", "opportunityid", "name", 3, "3e0b2f6a-4c1d-4f58-9a7e-5b2f0d7c9e21",
    (
        *_common("opportunityid"),
        Attribute("name", "String", max_length=300),
        Attribute("description", "Memo", max_length=2000),
        Attribute("estimatedvalue", "Money"),
        Attribute("actualvalue", "Money"),
        Attribute("estimatedclosedate", "DateTime", date_only=True),
        Attribute("actualclosedate", "DateTime", date_only=True),
        Attribute("closeprobability", "Integer"),
        Attribute("salesstage", "Picklist", options=SALES_STAGES),
        Attribute("stepname", "String", max_length=200),
        Attribute("opportunityratingcode", "Picklist",
                  options=(Option(1, "Hot"), Option(2, "Warm"), Option(3, "Cold"))),
        Attribute("customerid", "Customer", targets=("account", "contact")),
        Attribute("parentaccountid", "Lookup", targets=("account",)),
        Attribute("parentcontactid", "Lookup", targets=("contact",)),
        OWNER,
        CURRENCY,
        _state("Open", "Won", "Lost"),
        _status((1, "In Progress", 0), (2, "On Hold", 0), (3, "Won", 1), (4, "Canceled", 2), (5, "Out-Sold", 2)),
        # made for crm_pipelines (publisher prefix "crm", a Single line of text column of the default 100
        # characters): a created opportunity is found again by it after a crash (issue 13)
        Attribute(LOOKUP_KEY_COLUMN, "String", max_length=100, custom=True),
    ),
    (
        NavProperty("customerid_account", "customerid", "account"),
        NavProperty("customerid_contact", "customerid", "contact"),
        NavProperty("parentaccountid", "parentaccountid", "account"),
        NavProperty("parentcontactid", "parentcontactid", "contact"),
        NavProperty("ownerid", "ownerid", "systemuser"),
    ),
)

SYSTEMUSER = Table(
    "systemuser", "systemusers", "systemuserid", "fullname", 8, "e2b9f4a4-7e4b-4d1a-8d4b-9a1c7d2f3e41",
    (
        *_common("systemuserid"),
        Attribute("firstname", "String", max_length=256),
        Attribute("lastname", "String", max_length=256),
        Attribute("fullname", "String", read_only=True, max_length=200),
        Attribute("internalemailaddress", "String", max_length=100),
        Attribute("domainname", "String", max_length=1024),
        Attribute("isdisabled", "Boolean"),
        Attribute("azureactivedirectoryobjectid", "Uniqueidentifier"),
    ),
)

TABLES: tuple[Table, ...] = (CONTACT, LEAD, ACCOUNT, OPPORTUNITY, SYSTEMUSER)
BY_SET = {t.entity_set: t for t in TABLES}
BY_LOGICAL = {t.logical_name: t for t in TABLES}

"""The settings tree. Secrets never live here: connections name the environment variables that hold them.

Rule IDs are SPEC.md's; each option says which rule it serves.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator


class _Strict(BaseModel):
    # unknown keys are errors: a typo must not silently fall back to a default
    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(StrEnum):
    """CON-1: per connection and object."""

    TWO_WAY = "two_way"
    HUBSPOT_TO_OTHER = "hubspot_to_other"
    OTHER_TO_HUBSPOT = "other_to_hubspot"


class FieldRule(StrEnum):
    """CONF-6: per-field rules overriding the connection default."""

    TWO_WAY = "two_way"
    PREFER_HUBSPOT_UNLESS_BLANK = "prefer_hubspot_unless_blank"
    PREFER_OTHER_UNLESS_BLANK = "prefer_other_unless_blank"
    ALWAYS_HUBSPOT = "always_hubspot"
    ALWAYS_OTHER = "always_other"
    DONT_SYNC = "dont_sync"
    SET_ON_CREATE_ONLY = "set_on_create_only"


# -- connections ---------------------------------------------------------------------------------------


# TOP-2: where a connection goes. Unset: the real API when any of its secrets is set, else the sandbox.
# Stated, a deployment with ``target: api`` whose secret is missing fails naming the variable instead of
# talking to whatever sandbox happens to run on the machine.
Target = Literal["api", "sandbox"]


class HubSpotConnection(_Strict):
    enabled: bool = True
    target: Target | None = None
    base_url: HttpUrl = HttpUrl("https://api.hubapi.com")
    # a private-app token, or OAuth (client id/secret + refresh token); values come from these variables
    access_token_env: str = "HUBSPOT_ACCESS_TOKEN"
    oauth_client_id_env: str = "HUBSPOT_CLIENT_ID"
    oauth_client_secret_env: str = "HUBSPOT_CLIENT_SECRET"
    oauth_refresh_token_env: str = "HUBSPOT_REFRESH_TOKEN"
    api_call_limit: int | None = Field(None, ge=1, description="OPS-2: at most this many calls in any 24 h")
    # issue 17: the portal's rate limits (FACTS §4): calls per 10 s by tier, 250 with the API Limit Increase
    # add-on; the bulk import's list walker paces itself by them
    tier: Literal["free", "starter", "professional", "enterprise"] = "professional"
    api_limit_increase: bool = False
    # issue 18: how long one call keeps retrying faults (backoff capped at a minute) before it gives up
    retry_budget_s: float = Field(900, gt=0)
    # issue 18: how long a read waits for an answer (to connect, or for the next bytes of its body) before it
    # is given up on and retried, four times longer after each timeout, up to ten minutes; a first attempt
    # waits less (at least 2 s) once its endpoint's round trips are known (crm/http.py)
    read_timeout_s: float = Field(10, gt=0)
    # OPS-10: writing back to this CRM; unset: on for the sandbox, off for the real API (plans are made either way)
    writes: bool | None = None  # `on`/`off` (YAML reads them as booleans; pydantic takes either spelling)


class SalesforceConnection(_Strict):
    enabled: bool = True
    target: Target | None = None
    login: Literal["production", "sandbox"] = "production"  # OPS-3: sandbox orgs log in on test.salesforce.com
    login_url: HttpUrl | None = Field(None, description="overrides the login host chosen by `login`")
    api_version: str = Field("62.0", pattern=r"^\d+\.\d$")
    client_id_env: str = "SALESFORCE_CLIENT_ID"
    client_secret_env: str = "SALESFORCE_CLIENT_SECRET"
    username_env: str = "SALESFORCE_USERNAME"  # JWT bearer flow
    private_key_env: str = "SALESFORCE_PRIVATE_KEY"  # JWT bearer flow (PEM)
    refresh_token_env: str = "SALESFORCE_REFRESH_TOKEN"
    api_call_limit: int | None = Field(None, ge=1, description="OPS-2")
    # issue 18: how long one call keeps retrying faults (backoff capped at a minute) before it gives up
    retry_budget_s: float = Field(900, gt=0)
    # issue 18: how long a read waits for an answer (to connect, or for the next bytes of its body) before it
    # is given up on and retried, four times longer after each timeout, up to ten minutes; a first attempt
    # waits less (at least 2 s) once its endpoint's round trips are known (crm/http.py)
    read_timeout_s: float = Field(10, gt=0)
    # OPS-10: writing back to this CRM; unset: on for the sandbox, off for the real API (plans are made either way)
    writes: bool | None = None  # `on`/`off` (YAML reads them as booleans; pydantic takes either spelling)


class DynamicsConnection(_Strict):
    enabled: bool = True
    target: Target | None = None
    org_url: HttpUrl | None = Field(None, description="https://<org>.crm.dynamics.com")
    authority_url: HttpUrl = HttpUrl("https://login.microsoftonline.com")
    tenant_id_env: str = "DYNAMICS_TENANT_ID"
    client_id_env: str = "DYNAMICS_CLIENT_ID"
    client_secret_env: str = "DYNAMICS_CLIENT_SECRET"
    api_call_limit: int | None = Field(None, ge=1, description="OPS-2")
    # issue 18: how long one call keeps retrying faults (backoff capped at a minute) before it gives up
    retry_budget_s: float = Field(900, gt=0)
    # issue 18: how long a read waits for an answer (to connect, or for the next bytes of its body) before it
    # is given up on and retried, four times longer after each timeout, up to ten minutes; a first attempt
    # waits less (at least 2 s) once its endpoint's round trips are known (crm/http.py)
    read_timeout_s: float = Field(10, gt=0)
    # OPS-10: writing back to this CRM; unset: on for the sandbox, off for the real API (plans are made either way)
    writes: bool | None = None  # `on`/`off` (YAML reads them as booleans; pydantic takes either spelling)


class Connections(_Strict):
    hubspot: HubSpotConnection = HubSpotConnection()
    salesforce: SalesforceConnection = SalesforceConnection()
    dynamics: DynamicsConnection = DynamicsConnection()


# -- sync options --------------------------------------------------------------------------------------


class Filter(_Strict):
    """CON-8: a criterion a record must meet to sync."""

    property: str
    operator: Literal["eq", "neq", "in", "not_in", "has_value", "has_no_value", "contains"]
    value: str | float | bool | None = None
    values: list[str] = []

    @model_validator(mode="after")
    def _operands(self) -> Filter:
        if self.operator in ("in", "not_in") and not self.values:
            raise ValueError(f"operator {self.operator!r} needs `values`")
        if self.operator in ("eq", "neq", "contains") and self.value is None:
            raise ValueError(f"operator {self.operator!r} needs `value`")
        return self


class ObjectSync(_Strict):
    enabled: bool = True  # object switch (e.g. COM-1 for companies)
    direction: Direction = Direction.TWO_WAY  # CON-1
    filters: list[Filter] = []  # CON-8, all must hold


class CompanySync(ObjectSync):
    """COM-1 switch (``enabled``) and direction, with the company creation rules."""

    # COM-2: HubSpot company ids a user asked to create in the other CRM (whatever their contacts)
    requested: list[str] = []
    # COM-3: when company sync was switched on; an Account (account) not modified since then existed before
    # and syncs only when imported (``import_ids``) or associated with a syncing contact. None: every record
    # counts as new.
    enabled_since: datetime | None = None
    import_ids: list[str] = []  # COM-3: pre-existing Accounts / accounts to import into HubSpot


class FieldMapping(_Strict):
    """A mapped field (DEAL-1 custom mappings) with its rule (CONF-6) and value map for picklists."""

    hubspot: str
    other: str
    # the other CRM's object holding ``other`` (e.g. Contact, Lead, Opportunity, contacts, opportunities)
    object: str
    type: Literal["text", "number", "date", "datetime", "bool", "picklist", "email", "country", "state", "owner"] = (
        "text"
    )
    rule: FieldRule = FieldRule.TWO_WAY
    value_map: dict[str, str] = {}  # other value -> HubSpot value; reversed for the other direction


class StageMapping(_Strict):
    """DEAL-2/DEAL-4: one pipeline (SF record type or Dynamics process) mapped to a HubSpot pipeline."""

    other_pipeline: str  # SF RecordTypeId, "standard" for the org's only pipeline, or a Dynamics process name
    hubspot_pipeline: str
    stages: dict[str, str] = {}  # other stage -> HubSpot stage id
    auto_map: bool = False  # DEAL-2: propose pairs by text similarity for the stages left unmapped


class DealSync(ObjectSync):
    pipelines: list[StageMapping] = []
    # DEAL-5: route synced deals into this HubSpot pipeline to keep them apart from existing ones
    dedicated_pipeline: str | None = None
    # DEAL-7: a deal becoming closed won makes its contacts customers
    closed_won_sets_customer: bool = False


# ROLL-1: HubSpot's own calculated, read-only contact rollups (SPEC's rollup table): the sync never writes them
HUBSPOT_CALCULATED_ROLLUPS = ("num_associated_deals", "first_deal_created_date", "recent_deal_close_date",
                              "recent_deal_amount", "total_revenue")  # fmt: skip


class RollupTargets(_Strict):
    """ROLL-2: the field of this CRM's contact records each cross-CRM rollup is written to (a HubSpot contact
    property; a field on Salesforce Contact and Lead; an attribute of the Dynamics contact or lead). Unset: that
    figure is not written. Default: none configured, nothing is written."""

    num_associated_deals: str | None = None
    first_deal_created_date: str | None = None
    recent_deal_close_date: str | None = None
    recent_deal_amount: str | None = None
    total_revenue: str | None = None

    def fields(self) -> dict[str, str]:
        """figure -> target field, for the configured ones."""
        return {k: v for k, v in self.model_dump().items() if v}


class HubSpotRollupTargets(RollupTargets):
    @field_validator("*")
    @classmethod
    def _not_calculated(cls, value: str | None) -> str | None:
        if value in HUBSPOT_CALCULATED_ROLLUPS:  # ROLL-1
            raise ValueError(f"{value} is one of HubSpot's calculated, read-only contact properties (ROLL-1): the "
                             "sync never writes it; name a custom contact property instead")  # fmt: skip
        return value


class HubSpotSync(_Strict):
    rollup_targets: HubSpotRollupTargets = HubSpotRollupTargets()  # ROLL-2


class SalesforceSync(_Strict):
    contacts: ObjectSync = ObjectSync()
    companies: CompanySync = CompanySync()  # COM-1..3
    deals: DealSync = DealSync()
    tasks: ObjectSync = ObjectSync()  # OPS-4
    new_contact_type: Literal["Lead", "Contact"] = "Lead"  # CON-5
    create_contact_when_lead_created: bool = True  # CON-6
    create_contact_when_contact_created: bool = True  # CON-6
    inclusion_list: list[str] | None = None  # CON-7: HubSpot contact ids or emails; None = every contact
    valid_email_only: bool = True  # CON-3
    delete_contact_when_lead_deleted: bool = False  # DEL-2
    delete_contact_when_contact_deleted: bool = False  # DEL-2
    default_app: Literal["hubspot", "salesforce"] = "hubspot"  # CONF-2
    conflict_window_minutes: float = Field(5, gt=0)  # CONF-1
    field_mappings: list[FieldMapping] = []
    rollup_targets: RollupTargets = RollupTargets()  # ROLL-2: fields on Contact and Lead


class DynamicsSync(_Strict):
    contact_entity: Literal["contact", "lead"] = "contact"  # TOP-1: one, chosen per connection
    contacts: ObjectSync = ObjectSync()
    companies: CompanySync = CompanySync()  # COM-1..3
    deals: DealSync = DealSync()
    lifecycle_stage: str | None = None  # CON-9: given to contacts created/updated from Dynamics
    valid_email_only: bool = True  # CON-3
    default_app: Literal["hubspot", "dynamics"] = "hubspot"  # CONF-2
    conflict_window_minutes: float = Field(5, gt=0)  # CONF-1
    field_mappings: list[FieldMapping] = []
    rollup_targets: RollupTargets = RollupTargets()  # ROLL-2: attributes of the contact_entity


class Sync(_Strict):
    hubspot: HubSpotSync = HubSpotSync()
    salesforce: SalesforceSync = SalesforceSync()
    dynamics: DynamicsSync = DynamicsSync()
    # ROLL-2: the currency cross-CRM amounts are summed in (deals whose CRM gives no converted value count only
    # when in this currency or of unknown currency); unset: the CRMs' home currencies are taken as one
    rollup_home_currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class Extract(_Strict):
    # the first daily partition (OPS-1); it also holds every record modified before it, so a later date
    # trades per-day history in the Dagster UI for fewer partitions, never for missing records
    start_date: date = date(2019, 1, 1)
    # backfill policy: at most this many daily partitions per run, so the bulk import is a few resumable
    # runs rather than thousands of tiny ones or a single giant one. Each run costs about a second of
    # Dagster bookkeeping and a fresh window per object; 1,000 days makes eight years three runs.
    partitions_per_run: int = Field(1000, ge=1, le=3660)
    # issue 18: a CRM's objects read side by side in one step, within the connection's rate limits and
    # concurrency, so one object's waits on a flaky API overlap the others' instead of adding up. Each
    # object in flight holds a page or two in memory (a Salesforce bulk page is up to 50,000 rows).
    objects_in_parallel: int = Field(3, ge=1, le=16)
    # the sync loop (issue 14): the change sensor polls every sensor_interval_s while changes keep coming (a
    # change found in the last ACTIVE_FOR), else every idle_interval_s, which sets an idle sync's API cost
    sensor_interval_s: int = Field(10, ge=10)
    idle_interval_s: int = Field(60, ge=10)


class Sandbox(_Strict):
    """Where the bundled sandboxes keep their data and announce their endpoints (TOP-2)."""

    data_dir: str = ".sandbox"
    # the file a running `crm-pipelines sandbox serve` writes into data_dir with its ports and credentials
    endpoints_file: str = "endpoints.json"


class Settings(_Strict):
    state_database_url: str = "sqlite:///.crm_pipelines/state.sqlite3"
    connections: Connections = Connections()
    sync: Sync = Sync()
    extract: Extract = Extract()
    sandbox: Sandbox = Sandbox()

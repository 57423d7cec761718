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

_ENABLED = ("TOP-1: the connection syncs. Off: it is neither read nor written, and nothing is deleted anywhere because "
            "of it.")
_TARGET = ("TOP-2: `api` (the real API: a secret that is not set is an error naming its variable) or `sandbox` (the "
           "bundled sandbox announced in `<sandbox.data_dir>/<sandbox.endpoints_file>`; secrets are ignored). Unset: "
           "the API as soon as any of the connection's secret variables is set, else the sandbox. State `api` in a "
           "deployment.")
_API_CALL_LIMIT = ("OPS-2: at most this many API calls (logins included) in any rolling 24 h, counted in the state "
                   "database and shared by every process; when they are spent, work is deferred until calls fit "
                   "again (OPS-8). Unset: no limit.")
_RETRY_BUDGET = ("How long, in seconds, one call (a login too) keeps retrying 429s, 5xx, timeouts and dropped "
                 "connections, with backoff up to a minute between tries, before it fails.")
_READ_TIMEOUT = ("How long, in seconds, a read waits for an answer (to connect, or for the next bytes of its body) "
                 "before it is sent again; four times longer after each timeout, up to ten minutes. Once an endpoint's "
                 "round trips are known a first attempt waits less (at least 2 s).")
_WRITES = ("OPS-10: write to this CRM (`on`) or only plan (`off`). Unset: on for the sandbox, off for the real API. "
           "The plans are made either way.")


class HubSpotConnection(_Strict):
    enabled: bool = Field(True, description=_ENABLED)
    target: Target | None = Field(None, description=_TARGET)
    base_url: HttpUrl = Field(HttpUrl("https://api.hubapi.com"), description=(
        "The HubSpot API's address; the OAuth token endpoint is `/oauth/v1/token` on it."))
    access_token_env: str = Field("HUBSPOT_ACCESS_TOKEN", description=(
        "Name of the environment variable holding a private app's access token, sent as "
        "`Authorization: Bearer`. When it is set, OAuth is not used."))
    oauth_client_id_env: str = Field("HUBSPOT_CLIENT_ID", description=(
        "Name of the environment variable holding the OAuth app's client id (OAuth: used when no access token is set "
        "and the refresh token variable is)."))
    oauth_client_secret_env: str = Field("HUBSPOT_CLIENT_SECRET", description=(
        "Name of the environment variable holding the OAuth app's client secret."))
    oauth_refresh_token_env: str = Field("HUBSPOT_REFRESH_TOKEN", description=(
        "Name of the environment variable holding the OAuth refresh token the sync trades for short-lived access "
        "tokens (renewed a minute before they expire, or at once on a 401)."))
    api_call_limit: int | None = Field(None, ge=1, description=_API_CALL_LIMIT)
    # issue 17: the bulk import's list walker paces itself by these (FACTS §4)
    tier: Literal["free", "starter", "professional", "enterprise"] = Field("professional", description=(
        "The portal's subscription tier, which sets its rate limit: 100 calls per 10 s for free and starter, 190 for "
        "professional and enterprise. Searches have their own 5 per second whatever the tier."))
    api_limit_increase: bool = Field(False, description=(
        "The portal has HubSpot's API Limit Increase add-on: 250 calls per 10 s, whatever `tier` says."))
    retry_budget_s: float = Field(900, gt=0, description=_RETRY_BUDGET)
    read_timeout_s: float = Field(10, gt=0, description=_READ_TIMEOUT)
    writes: bool | None = Field(None, description=_WRITES)  # `on`/`off`: YAML reads them as booleans


class SalesforceConnection(_Strict):
    enabled: bool = Field(True, description=_ENABLED)
    target: Target | None = Field(None, description=_TARGET)
    login: Literal["production", "sandbox"] = Field("production", description=(
        "OPS-3: the kind of org, which picks the login host: `production` (and Developer Edition) logs in on "
        "https://login.salesforce.com, `sandbox` on https://test.salesforce.com. The JWT's audience follows it even "
        "when `login_url` is set."))
    login_url: HttpUrl | None = Field(None, description=(
        "Overrides the login host chosen by `login`, e.g. the org's My Domain URL "
        "(`https://<domain>.my.salesforce.com`), which the client credentials flow needs."))
    api_version: str = Field("62.0", pattern=r"^\d+\.\d$", description=(
        "REST API version the calls use (`/services/data/v<version>/`); quote it in YAML (`\"62.0\"`)."))
    client_id_env: str = Field("SALESFORCE_CLIENT_ID", description=(
        "Name of the environment variable holding the connected app's consumer key (client id); every flow needs it."))
    client_secret_env: str = Field("SALESFORCE_CLIENT_SECRET", description=(
        "Name of the environment variable holding the consumer secret: the client credentials flow, and the refresh "
        "token flow when the app requires a secret."))
    username_env: str = Field("SALESFORCE_USERNAME", description=(
        "Name of the environment variable holding the integration user's username (JWT bearer flow, with the private "
        "key)."))
    private_key_env: str = Field("SALESFORCE_PRIVATE_KEY", description=(
        "Name of the environment variable holding the PEM text of the private key whose certificate the connected app "
        "has (JWT bearer flow; the key itself, not a path)."))
    refresh_token_env: str = Field("SALESFORCE_REFRESH_TOKEN", description=(
        "Name of the environment variable holding a refresh token from a one-time web-server (authorization code) "
        "flow (refresh token flow)."))
    api_call_limit: int | None = Field(None, ge=1, description=_API_CALL_LIMIT)
    retry_budget_s: float = Field(900, gt=0, description=_RETRY_BUDGET)
    read_timeout_s: float = Field(10, gt=0, description=_READ_TIMEOUT)
    writes: bool | None = Field(None, description=_WRITES)  # `on`/`off`: YAML reads them as booleans


class DynamicsConnection(_Strict):
    enabled: bool = Field(True, description=_ENABLED)
    target: Target | None = Field(None, description=_TARGET)
    org_url: HttpUrl | None = Field(None, description=(
        "The environment URL, `https://<org>.crm.dynamics.com` (the region's host may differ); required for the real "
        "API. The token is asked for the scope `<org_url>/.default`."))
    authority_url: HttpUrl = Field(HttpUrl("https://login.microsoftonline.com"), description=(
        "Microsoft Entra ID's sign-in host; the token endpoint is `<authority_url>/<tenant>/oauth2/v2.0/token`. "
        "Change it only for a national cloud."))
    tenant_id_env: str = Field("DYNAMICS_TENANT_ID", description=(
        "Name of the environment variable holding the Entra ID tenant (directory) id."))
    client_id_env: str = Field("DYNAMICS_CLIENT_ID", description=(
        "Name of the environment variable holding the app registration's application (client) id."))
    client_secret_env: str = Field("DYNAMICS_CLIENT_SECRET", description=(
        "Name of the environment variable holding the app registration's client secret (client credentials flow)."))
    api_call_limit: int | None = Field(None, ge=1, description=_API_CALL_LIMIT)
    retry_budget_s: float = Field(900, gt=0, description=_RETRY_BUDGET)
    read_timeout_s: float = Field(10, gt=0, description=_READ_TIMEOUT)
    writes: bool | None = Field(None, description=_WRITES)  # `on`/`off`: YAML reads them as booleans


class Connections(_Strict):
    hubspot: HubSpotConnection = Field(HubSpotConnection(), description="The HubSpot connection: the hub (TOP-1).")
    salesforce: SalesforceConnection = Field(SalesforceConnection(), description=(
        "The Salesforce connection (HubSpot ↔ Salesforce)."))
    dynamics: DynamicsConnection = Field(DynamicsConnection(), description=(
        "The Dynamics 365 (Dataverse) connection (HubSpot ↔ Dynamics 365)."))


# -- sync options --------------------------------------------------------------------------------------


class Filter(_Strict):
    """CON-8: a criterion a record must meet to sync."""

    property: str = Field(description="The HubSpot property (internal name) the filter reads.")
    operator: Literal["eq", "neq", "in", "not_in", "has_value", "has_no_value", "contains"] = Field(description=(
        "How the property is compared, trimmed and case-insensitively: `eq`/`neq`/`contains` take `value`, "
        "`in`/`not_in` take `values`, `has_value`/`has_no_value` take neither."))
    value: str | float | bool | None = Field(None, description="The operand of `eq`, `neq` and `contains`.")
    values: list[str] = Field([], description=(
        "The operands of `in` and `not_in` (a static list of values, ids or emails)."))

    @model_validator(mode="after")
    def _operands(self) -> Filter:
        if self.operator in ("in", "not_in") and not self.values:
            raise ValueError(f"operator {self.operator!r} needs `values`")
        if self.operator in ("eq", "neq", "contains") and self.value is None:
            raise ValueError(f"operator {self.operator!r} needs `value`")
        return self


class ObjectSync(_Strict):
    """One object's switch, direction and filters on one connection."""

    enabled: bool = Field(True, description="This object syncs on this connection (for companies: COM-1).")
    direction: Direction = Field(Direction.TWO_WAY, description=(
        "CON-1: `two_way`, `hubspot_to_other` or `other_to_hubspot`. A one-way connection never writes its source, "
        "whatever a conflict or field rule says (CONF-4)."))
    filters: list[Filter] = Field([], description=(
        "CON-8: criteria on HubSpot property names; all must hold. Contacts: a HubSpot contact is created in the "
        "other CRM only when it passes. Deals: read on the deal's mapped values, in both directions. Companies and "
        "tasks accept the key but their plans do not read it yet."))


class CompanySync(ObjectSync):
    """COM-1 switch (``enabled``) and direction, with the company creation rules."""

    requested: list[str] = Field([], description=(
        "COM-2: HubSpot company ids to create in the other CRM whatever their contacts."))
    enabled_since: datetime | None = Field(None, description=(
        "COM-3: when company sync was switched on. An Account / account not modified since then existed before and "
        "is created in HubSpot only when listed in `import_ids` or associated with a contact that syncs with "
        "HubSpot. Unset: every record counts as new."))
    import_ids: list[str] = Field([], description=(
        "COM-3: ids of pre-existing Accounts / accounts to create in HubSpot anyway."))


class FieldMapping(_Strict):
    """A mapped field (DEAL-1 custom mappings) with its rule (CONF-6) and value map for picklists."""

    hubspot: str = Field(description="The HubSpot property (internal name).")
    other: str = Field(description="The other CRM's field (Salesforce API name, Dataverse column logical name).")
    object: str = Field(description=(
        "The other CRM's object holding `other`: Salesforce `Contact`, `Lead`, `Account`, `Opportunity`; Dataverse "
        "`contacts`, `leads`, `accounts`, `opportunities`."))
    type: Literal["text", "number", "date", "datetime", "bool", "picklist", "email", "country", "state", "owner"] = (
        Field("text", description=(
            "How the values are normalized before they are compared and written (e.g. `country` and `state` to ISO "
            "codes, `owner` matched across CRMs by email).")))
    rule: FieldRule = Field(FieldRule.TWO_WAY, description=(
        "CONF-6: `two_way` (CONF-1/2), `prefer_hubspot_unless_blank`, `prefer_other_unless_blank`, `always_hubspot`, "
        "`always_other`, `dont_sync`, `set_on_create_only`."))
    value_map: dict[str, str] = Field({}, description=(
        "Picklists: other CRM's value → HubSpot's value; read backwards for the other direction."))


class StageMapping(_Strict):
    """DEAL-2/DEAL-4: one pipeline (SF record type or Dynamics process) mapped to a HubSpot pipeline."""

    other_pipeline: str = Field(description=(
        "The other CRM's pipeline: a Salesforce RecordTypeId, or `standard` for Opportunities without a record type; "
        "`standard` for Dynamics (its one sales process)."))
    hubspot_pipeline: str = Field(description="The HubSpot deal pipeline id it maps onto (e.g. `default`).")
    stages: dict[str, str] = Field({}, description=(
        "Other CRM's stage → HubSpot stage id. Salesforce: the `StageName`; Dynamics: `Qualify`, `Develop`, "
        "`Propose`, `Close`, `Won`, `Lost`. A deal in a stage without a pair is not synced and is a finding (DEAL-2). "
        "HubSpot deals go the other way through the first pair naming their stage."))
    auto_map: bool = Field(False, description=(
        "DEAL-2: propose pairs by text similarity for the stages left unmapped. The proposal is shown in the "
        "`unified/deals` asset's metadata (`stage_mapping_proposal`) to review and paste here; it is never applied "
        "by itself."))


class DealSync(ObjectSync):
    """Deals: the switch, direction and filters, with the pipeline and stage mapping (DEAL-1..7)."""

    pipelines: list[StageMapping] = Field([], description=(
        "DEAL-2: one entry per pipeline of the other CRM mapped onto a HubSpot pipeline, stage by stage. Salesforce "
        "Opportunities of an unmapped record type go to a HubSpot pipeline `Salesforce - <RecordTypeId>` the sync "
        "creates (DEAL-3)."))
    dedicated_pipeline: str | None = Field(None, description=(
        "DEAL-5: the HubSpot pipeline id that Salesforce Opportunities of unmapped record types go to instead of "
        "`Salesforce - <RecordTypeId>` (the sync adds the stages it lacks). Read for Salesforce only."))
    closed_won_sets_customer: bool = Field(False, description=(
        "DEAL-7: a deal won (in HubSpot or in this CRM) makes its HubSpot contacts `customer`; lifecycle stages only "
        "move forward."))


# ROLL-1: HubSpot's own calculated, read-only contact rollups (SPEC's rollup table): the sync never writes them
HUBSPOT_CALCULATED_ROLLUPS = ("num_associated_deals", "first_deal_created_date", "recent_deal_close_date",
                              "recent_deal_amount", "total_revenue")  # fmt: skip


class RollupTargets(_Strict):
    """ROLL-2: the field of this CRM's contact records each cross-CRM rollup is written to (a HubSpot contact
    property; a field on Salesforce Contact and Lead; an attribute of the Dynamics contact or lead). Unset: that
    figure is not written. Default: none configured, nothing is written."""

    num_associated_deals: str | None = Field(None, description="Field for the number of associated deals.")
    first_deal_created_date: str | None = Field(None, description=(
        "Field for the earliest create date of an associated deal."))
    recent_deal_close_date: str | None = Field(None, description=(
        "Field for the close date of the most recently closed-won associated deal."))
    recent_deal_amount: str | None = Field(None, description=(
        "Field for the amount of the most recently created closed-won associated deal."))
    total_revenue: str | None = Field(None, description=(
        "Field for the sum of the closed-won associated deals' amounts."))

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
    rollup_targets: HubSpotRollupTargets = Field(HubSpotRollupTargets(), description=(
        "ROLL-2: the custom HubSpot contact properties the cross-CRM rollups are written to; never one of HubSpot's "
        "calculated ones (ROLL-1), which the settings refuse."))


class SalesforceSync(_Strict):
    contacts: ObjectSync = Field(ObjectSync(), description="Contacts ↔ Salesforce Leads and Contacts (CON-*).")
    companies: CompanySync = Field(CompanySync(), description="Companies ↔ Accounts (COM-1..3).")
    deals: DealSync = Field(DealSync(), description="Deals ↔ Opportunities (DEAL-*).")
    tasks: ObjectSync = Field(ObjectSync(), description=(
        "OPS-4: HubSpot tasks → Salesforce Tasks on the related record; only HubSpot → Salesforce "
        "(`other_to_hubspot` turns it off)."))
    new_contact_type: Literal["Lead", "Contact"] = Field("Lead", description=(
        "CON-5: a HubSpot contact created in Salesforce becomes a `Lead` or a `Contact`."))
    create_contact_when_lead_created: bool = Field(True, description=(
        "CON-6: a Salesforce Lead creates a HubSpot contact."))
    create_contact_when_contact_created: bool = Field(True, description=(
        "CON-6: a Salesforce Contact creates a HubSpot contact."))
    inclusion_list: list[str] | None = Field(None, description=(
        "CON-7: only HubSpot contacts on this list (HubSpot contact ids or emails) are created in Salesforce; it also "
        "decides which contacts count for creating Accounts (COM-2). Unset: every contact."))
    valid_email_only: bool = Field(True, description=(
        "CON-3: only contacts with a valid email sync; off, records without one are linked only through the links "
        "the sync made, never by guessing."))
    delete_contact_when_lead_deleted: bool = Field(False, description=(
        "DEL-2: deleting a Salesforce Lead deletes its HubSpot contact."))
    delete_contact_when_contact_deleted: bool = Field(False, description=(
        "DEL-2: deleting a Salesforce Contact deletes its HubSpot contact."))
    default_app: Literal["hubspot", "salesforce"] = Field("hubspot", description=(
        "CONF-2: the app that wins a conflict (both sides changed within the window). A one-way connection's source "
        "is the default app whatever this says."))
    conflict_window_minutes: float = Field(5, gt=0, description=(
        "CONF-1: two changes of one field at most this many minutes apart are a conflict, won by `default_app`; "
        "further apart, the later change wins."))
    field_mappings: list[FieldMapping] = Field([], description=(
        "DEAL-1 custom field mappings beside the default ones, each with its CONF-6 rule."))
    rollup_targets: RollupTargets = Field(RollupTargets(), description=(
        "ROLL-2: fields on Salesforce Contact and Lead the cross-CRM rollups are written to."))


class DynamicsSync(_Strict):
    contact_entity: Literal["contact", "lead"] = Field("contact", description=(
        "TOP-1: the Dataverse table HubSpot contacts sync with, `contact` or `lead` (one per connection)."))
    contacts: ObjectSync = Field(ObjectSync(), description="Contacts ↔ the `contact_entity` table.")
    companies: CompanySync = Field(CompanySync(), description="Companies ↔ accounts (COM-1..3).")
    deals: DealSync = Field(DealSync(), description="Deals ↔ opportunities (DEAL-*).")
    lifecycle_stage: str | None = Field(None, description=(
        "CON-9: the HubSpot lifecycle stage (internal value, e.g. `lead`) given to HubSpot contacts that have a "
        "Dynamics record; stages only move forward. Unset: none."))
    valid_email_only: bool = Field(True, description="CON-3: only contacts with a valid email sync.")
    default_app: Literal["hubspot", "dynamics"] = Field("hubspot", description=(
        "CONF-2: the app that wins a conflict. A one-way connection's source is the default app."))
    conflict_window_minutes: float = Field(5, gt=0, description=(
        "CONF-1: two changes of one field at most this many minutes apart are a conflict."))
    field_mappings: list[FieldMapping] = Field([], description=(
        "DEAL-1 custom field mappings beside the default ones, each with its CONF-6 rule."))
    rollup_targets: RollupTargets = Field(RollupTargets(), description=(
        "ROLL-2: columns of the `contact_entity` table the cross-CRM rollups are written to."))


class Sync(_Strict):
    hubspot: HubSpotSync = Field(HubSpotSync(), description="What is written to HubSpot beyond the connections' rules.")
    salesforce: SalesforceSync = Field(SalesforceSync(), description="The HubSpot ↔ Salesforce sync rules.")
    dynamics: DynamicsSync = Field(DynamicsSync(), description="The HubSpot ↔ Dynamics 365 sync rules.")
    rollup_home_currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description=(
        "ROLL-2: the ISO currency code cross-CRM amounts are summed in; a deal whose CRM gives no converted value "
        "counts only when in this currency or of unknown currency. Unset: the CRMs' home currencies are taken as "
        "one."))


class Extract(_Strict):
    # a later start_date trades per-day history in the Dagster UI for fewer partitions, never for missing records;
    # 3,660 partitions per run makes ten years of history one run, which reads each object in one pass through every
    # rate bucket (issue 17: three runs of 1,000 days read the first two through search alone and paid three run
    # starts); a lower value trades import time for a finer unit of resumption; a Salesforce bulk page is up to
    # 50,000 rows in memory
    start_date: date = Field(date(2019, 1, 1), description=(
        "OPS-1: the first daily partition of the extracts; it also holds every record modified before it."))
    partitions_per_run: int = Field(3660, ge=1, le=3660, description=(
        "Backfill policy: at most this many daily partitions per run (the default: a history of up to ten years is one "
        "run, each object read in one pass); lower it to resume a failed import in smaller units."))
    objects_in_parallel: int = Field(3, ge=1, le=16, description=(
        "A CRM's objects read side by side in one step, within the connection's rate limits (1: one after "
        "another). Each object in flight holds a page or two in memory."))
    sensor_interval_s: int = Field(10, ge=10, description=(
        "Seconds between the change sensor's polls while changes keep coming (sets the sync's latency and its busy "
        "API cost)."))
    idle_interval_s: int = Field(60, ge=10, description=(
        "Seconds between the change sensor's polls ten minutes after the last change (sets an idle sync's API cost)."))


class Sandbox(_Strict):
    """Where the bundled sandboxes keep their data and announce their endpoints (TOP-2)."""

    data_dir: str = Field(".sandbox", description=(
        "The directory `crm-pipelines sandbox serve --data-dir` uses; connections whose target is the sandbox look "
        "for it there."))
    endpoints_file: str = Field("endpoints.json", description=(
        "The file a running `crm-pipelines sandbox serve` writes into `data_dir` with its ports and credentials."))


class Settings(_Strict):
    state_database_url: str = Field("sqlite:///.crm_pipelines/state.sqlite3", description=(
        "The sync's state database (mirror tables, cursors, API usage, links, plans): a SQLite file, or "
        "`postgresql://user:pw@host/db` in production. Put a URL holding a password in the environment variable "
        "instead, which overrides this key."))
    connections: Connections = Field(Connections(), description=(
        "Where each CRM is and how to log in. Secrets never go in the file: each connection names the environment "
        "variables that hold them (OPS-3)."))
    sync: Sync = Field(Sync(), description="What syncs, in which direction, and how conflicts are decided.")
    extract: Extract = Field(Extract(), description="How the CRMs are read: the bulk import and the change sensor.")
    sandbox: Sandbox = Field(Sandbox(), description="The bundled sandboxes (TOP-2).")

"""``crm-pipelines check``: is each configured connection's login accepted by its API, and does the CRM have
the fields the writes find their creates again by? (OPS-3, issue 13)

One cheap authenticated call per connection (its login included). Reasons quote the API's own error, never
a secret, and say which of three things happened: the login was refused (reported at once, the API's
reason quoted), the API kept failing (reported after the retries of a shorter budget than a sync's: no
verdict on the credentials), or the credentials were accepted (saying so when faults were retried first).

Once the credentials are accepted, each writable catalog object whose lookup field is not one every org has
(the custom key property, external-id field or column an admin makes for crm_pipelines) is looked up in the
CRM's metadata, one call per object: a create whose answer was lost is found again by that field before it
is sent again (DESIGN Invariant 1), so a missing one gets a verdict of its own, with how to make it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from crm_pipelines import catalog
from crm_pipelines.catalog import CatalogObject
from crm_pipelines.crm.connections import (
    ConnectionUnavailable,
    Secrets,
    dynamics_client,
    hubspot_client,
    salesforce_client,
    target_of,
)
from crm_pipelines.crm.dynamics.entities import logical_name
from crm_pipelines.crm.errors import AuthenticationError, CrmError, RetriesExhausted
from crm_pipelines.crm.metering import Meter
from crm_pipelines.settings.model import Settings


@dataclass(frozen=True)
class LookupFieldCheck:
    """One writable object's lookup field in its CRM (issue 13): there as the writes need it, or not."""

    connection: str
    object: str
    field: str
    verdict: str  # "present", "missing", "unusable" (there, not as needed), "unverified" (the API did not say)
    reason: str
    how_to_create: str = ""  # the field's settings, where to make it in the CRM's UI and the API call

    @property
    def ok(self) -> bool:
        return self.verdict == "present"


@dataclass(frozen=True)
class CredentialCheck:
    connection: str
    valid: bool
    target: str  # "api" (real credentials), "sandbox", or "not configured"
    reason: str
    verdict: str = ""  # "accepted", "refused", "unreachable" (no verdict), "not configured", "error"
    # verified once the credentials are accepted; their verdicts leave the credentials' alone
    lookup_fields: tuple[LookupFieldCheck, ...] = ()

    @property
    def ready(self) -> bool:
        """Credentials accepted and every lookup field there: what the exit status reports."""
        return self.valid and all(f.ok for f in self.lookup_fields)


# A check answers within about a minute: long enough to ride out a flaky moment, short enough to wait for.
CHECK_RETRY_BUDGET_S = 60.0


def environment_secrets() -> Secrets:
    return Secrets(dict(os.environ))


async def _probe_hubspot(client: Any) -> None:
    await client.api.request(
        "GET", "/crm/v3/objects/contacts", endpoint="GET /crm/v3/objects/{type}", params={"limit": 1}
    )


async def _probe_dynamics(client: Any) -> None:
    await client.count("systemusers")


async def _probe_salesforce(client: Any) -> None:
    await client.limits()


OPENERS: dict[str, tuple[Callable[..., Any], Callable[[Any], Awaitable[None]]]] = {
    "hubspot": (hubspot_client, _probe_hubspot),
    "salesforce": (salesforce_client, _probe_salesforce),
    "dynamics": (dynamics_client, _probe_dynamics),
}


async def check_connections(settings: Settings, secrets: Secrets) -> list[CredentialCheck]:
    results = []
    for name, (open_client, probe) in OPENERS.items():
        if not getattr(settings.connections, name).enabled:
            continue
        target = target_of(settings, name, secrets)
        meter = Meter()
        try:
            client = open_client(settings, secrets, meter=meter)
        except ConnectionUnavailable as e:
            results.append(CredentialCheck(name, False, target, str(e), "not configured"))
            continue
        client.api.retry_budget_s = CHECK_RETRY_BUDGET_S
        try:
            async with client:
                await probe(client)
                retried = sum(1 for call in meter.calls if _transient(call.status))
                fields = await check_lookup_fields(name, client, lookup_objects(name))
        except AuthenticationError as e:
            results.append(CredentialCheck(name, False, target, f"credentials refused: {e}", "refused"))
        except RetriesExhausted as e:
            results.append(
                CredentialCheck(
                    name,
                    False,
                    target,
                    f"not verified: the API kept failing ({e}); this says nothing about the credentials, "
                    "check again later",
                    "unreachable",
                )
            )
        except CrmError as e:
            results.append(CredentialCheck(name, False, target, str(e), "error"))
        else:
            reason = "credentials accepted"
            if retried:
                reason += f" after {retried} failed attempt{'s' * (retried > 1)} (the API is flaky; retried)"
            results.append(CredentialCheck(name, True, target, reason, "accepted", fields))
    return results


def _transient(status: int | str) -> bool:
    """A metered attempt that failed the way a flaky API fails (timeout, dropped, malformed, 429, 5xx)."""
    return isinstance(status, str) or status == 429 or status >= 500


# -- lookup fields (issue 13) -----------------------------------------------------------------------------
# Lookup fields every org or portal has and nobody can delete: nothing to verify, no call spent.
STANDARD_LOOKUP_FIELDS = {
    ("hubspot", "contacts", "email"),
    ("salesforce", "Lead", "Email"),
    ("salesforce", "Contact", "Email"),
    ("dynamics", "contacts", "emailaddress1"),
    ("dynamics", "leads", "emailaddress1"),
    ("dynamics", "accounts", "accountnumber"),
}


def lookup_objects(crm: str) -> list[CatalogObject]:
    """The writable objects of ``crm`` whose lookup field an admin has to make."""
    return [o for o in catalog.objects(crm) if o.writable and o.lookup_field
            and (crm, o.name, o.lookup_field) not in STANDARD_LOOKUP_FIELDS]  # fmt: skip


async def check_lookup_fields(crm: str, client: Any, objects: list[CatalogObject]) -> tuple[LookupFieldCheck, ...]:
    """One metadata call per object; an error on one object makes that field unverified, not the others."""
    verify = LOOKUP_VERIFIERS[crm]
    out = []
    for obj in objects:
        assert obj.lookup_field is not None
        try:
            out.append(await verify(client, obj.name, obj.lookup_field))
        except CrmError as e:
            # a 403 here is a missing permission to read metadata, not refused credentials: they just worked
            out.append(LookupFieldCheck(crm, obj.name, obj.lookup_field, "unverified",
                                        f"not verified: {e}", how_to_create(crm, obj.name, obj.lookup_field)))
    return tuple(out)


_WHY = "the writes use it to find a create whose answer was lost before sending it again (issue 13)"


async def _hubspot_field(client: Any, obj: str, field: str) -> LookupFieldCheck:
    found = await client.property(obj, field)
    where = f"GET /crm/v3/properties/{obj}/{field}"
    if found is None:
        return LookupFieldCheck("hubspot", obj, field, "missing",
                                f"no {obj} property {field} ({where} answered 404); {_WHY}",
                                how_to_create("hubspot", obj, field))
    if found.get("type") != "string":
        return LookupFieldCheck("hubspot", obj, field, "unusable",
                                f"the {obj} property {field} is a {found.get('type')}/{found.get('fieldType')} "
                                f"property; the key is text; {_WHY}", how_to_create("hubspot", obj, field))
    return LookupFieldCheck("hubspot", obj, field, "present", f"{where}: a text property")


async def _salesforce_field(client: Any, obj: str, field: str) -> LookupFieldCheck:
    info = (await client.describe(obj)).field(field)
    if info is None:
        return LookupFieldCheck("salesforce", obj, field, "missing",
                                f"the {obj} describe has no field {field} (absent, or hidden from this user by "
                                f"field-level security); {_WHY}", how_to_create("salesforce", obj, field))
    if not info.external_id:
        return LookupFieldCheck("salesforce", obj, field, "unusable",
                                f"{obj}.{field} exists but is not marked External ID; {_WHY}",
                                how_to_create("salesforce", obj, field))
    return LookupFieldCheck("salesforce", obj, field, "present", f"{obj}.{field}: an external-id field")


async def _dynamics_field(client: Any, obj: str, field: str) -> LookupFieldCheck:
    found = await client.attribute(obj, field)
    if found is None:
        return LookupFieldCheck("dynamics", obj, field, "missing",
                                f"the {obj} table has no column {field} (its EntityDefinitions attribute answered "
                                f"404); {_WHY}", how_to_create("dynamics", obj, field))
    if found.get("AttributeType") not in ("String", "Memo"):
        return LookupFieldCheck("dynamics", obj, field, "unusable",
                                f"the {obj} column {field} is of type {found.get('AttributeType')}; the key is "
                                f"text; {_WHY}", how_to_create("dynamics", obj, field))
    return LookupFieldCheck("dynamics", obj, field, "present", f"{obj}.{field}: a text column")


LOOKUP_VERIFIERS: dict[str, Callable[[Any, str, str], Awaitable[LookupFieldCheck]]] = {
    "hubspot": _hubspot_field,
    "salesforce": _salesforce_field,
    "dynamics": _dynamics_field,
}

_HUBSPOT_OBJECT = {"companies": ("Company", "companyinformation", True), "deals": ("Deal", "dealinformation", True),
                   "tasks": ("Task", None, False)}
# Salesforce keeps Task's custom fields on Activity (shared with Event): Setup makes them there.
_SALESFORCE_SETUP_OBJECT = {"Task": "Activity"}
_DYNAMICS_TABLE_LABEL = {"opportunities": "Opportunity", "accounts": "Account"}


def how_to_create(crm: str, obj: str, field: str) -> str:
    """The exact settings of the field the writes need, where to make it in the CRM's UI, and the API call."""
    if crm == "hubspot":
        label, group, unique = _HUBSPOT_OBJECT.get(obj, (obj, None, False))
        group_value = group or f"<a group from GET /crm/v3/properties/{obj}/groups>"
        rules = " On its Rules tab tick 'Require unique values for this property'." if unique else ""
        body = (f'{{"name": "{field}", "label": "crm_pipelines key", "type": "string", "fieldType": "text", '
                f'"groupName": "{group_value}"' + (', "hasUniqueValue": true' if unique else "") + "}")
        return (f"In HubSpot: Settings > Properties > select {label} properties > Create property: label "
                f"'crm_pipelines key', internal name '{field}', field type 'Single-line text'.{rules} "
                f"Or by API: POST /crm/v3/properties/{obj} {body}. A property deleted earlier is restored from the "
                f"Archived properties tab instead.")
    if crm == "salesforce":
        setup_object = _SALESFORCE_SETUP_OBJECT.get(obj, obj)
        where = f"{setup_object} (Task's fields live on Activity)" if setup_object != obj else obj
        name = field.removesuffix("__c")
        return (f"In Salesforce Setup: Object Manager > {where} > Fields & Relationships > New: data type Text, "
                f"length 255, Field Label 'External Id', Field Name '{name}' (API name {field}), tick 'Unique' "
                f"and 'External ID'; give the integration user read and edit access to it (field-level "
                f"security). An existing {field} that is not an external ID: edit it and tick 'External ID'. "
                f"By API: the Metadata API's CustomField {setup_object}.{field} with type Text, length 255, "
                f"externalId true, unique true.")
    label = _DYNAMICS_TABLE_LABEL.get(obj, obj)
    prefix, _, rest = field.partition("_")
    return (f"In Power Apps (make.powerapps.com), in a solution whose publisher's prefix is '{prefix}': Tables > "
            f"{label} > Columns > New column: display name 'crm_pipelines key', data type 'Single line of text' "
            f"(maximum length 100), schema name '{field}' (the prefix '{prefix}_' and '{rest}'). Or by API: POST "
            f"/api/data/v9.2/EntityDefinitions(LogicalName='{logical_name(obj)}')/Attributes with header "
            f"MSCRM.SolutionUniqueName: <that solution> and body {{\"@odata.type\": "
            f"\"Microsoft.Dynamics.CRM.StringAttributeMetadata\", \"SchemaName\": \"{field}\", \"MaxLength\": 100, "
            f"\"FormatName\": {{\"Value\": \"Text\"}}, \"RequiredLevel\": {{\"Value\": \"None\"}}, "
            f"\"DisplayName\": {{\"LocalizedLabels\": [{{\"Label\": \"crm_pipelines key\", "
            f"\"LanguageCode\": 1033}}]}}}}.")

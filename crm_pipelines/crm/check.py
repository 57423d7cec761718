"""``crm-pipelines check``: is each configured connection's login accepted by its API? (OPS-3)

One cheap authenticated call per connection. Reasons quote the API's own error, never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from crm_pipelines.crm.connections import (
    ConnectionUnavailable,
    Secrets,
    dynamics_client,
    hubspot_client,
    salesforce_client,
    target_of,
)
from crm_pipelines.crm.errors import CrmError
from crm_pipelines.settings.model import Settings


@dataclass(frozen=True)
class CredentialCheck:
    connection: str
    valid: bool
    target: str  # "api" (real credentials), "sandbox", or "not configured"
    reason: str


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
        try:
            client = open_client(settings, secrets)
        except ConnectionUnavailable as e:
            results.append(CredentialCheck(name, False, target, str(e)))
            continue
        try:
            async with client:
                await probe(client)
        except CrmError as e:
            results.append(CredentialCheck(name, False, target, str(e)))
        else:
            results.append(CredentialCheck(name, True, target, "credentials accepted"))
    return results

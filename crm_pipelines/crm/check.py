"""``crm-pipelines check``: is each configured connection's login accepted by its API? (OPS-3)

One cheap authenticated call per connection (its login included). Reasons quote the API's own error, never
a secret, and say which of three things happened: the login was refused (reported at once, the API's
reason quoted), the API kept failing (reported after the retries of a shorter budget than a sync's: no
verdict on the credentials), or the credentials were accepted (saying so when faults were retried first).
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
from crm_pipelines.crm.errors import AuthenticationError, CrmError, RetriesExhausted
from crm_pipelines.crm.metering import Meter
from crm_pipelines.settings.model import Settings


@dataclass(frozen=True)
class CredentialCheck:
    connection: str
    valid: bool
    target: str  # "api" (real credentials), "sandbox", or "not configured"
    reason: str
    verdict: str = ""  # "accepted", "refused", "unreachable" (no verdict), "not configured", "error"


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
            retried = sum(1 for call in meter.calls if _transient(call.status))
            reason = "credentials accepted"
            if retried:
                reason += f" after {retried} failed attempt{'s' * (retried > 1)} (the API is flaky; retried)"
            results.append(CredentialCheck(name, True, target, reason, "accepted"))
    return results


def _transient(status: int | str) -> bool:
    """A metered attempt that failed the way a flaky API fails (timeout, dropped, malformed, 429, 5xx)."""
    return isinstance(status, str) or status == 429 or status >= 500

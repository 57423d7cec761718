"""Opening a configured connection: the real API or the bundled sandbox, as the connection's ``target``
says (TOP-2). Extract, sync, ``check``, the benches and the demo all open clients here.

``target`` unset means: the real API when any of the connection's secrets is set, else the sandbox. With
``target: api`` a missing secret is an error naming its variable; with ``target: sandbox`` the secrets are
ignored. Before a client is handed out its host is dialled once (a TCP connect, no API call): a connection
nobody answers fails in seconds naming host and port, instead of retrying a dead port for minutes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crm_pipelines.crm.budget import CallBudget, CallLedger
from crm_pipelines.crm.dynamics.auth import ClientCredentials
from crm_pipelines.crm.dynamics.client import DynamicsClient
from crm_pipelines.crm.hubspot.auth import OAuthRefreshToken, PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.hubspot.dialect import hubspot_limits
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.ratelimit import RateLimits
from crm_pipelines.crm.salesforce.auth import ClientCredentials as SalesforceClientCredentials
from crm_pipelines.crm.salesforce.auth import make_auth
from crm_pipelines.crm.salesforce.client import SalesforceClient
from crm_pipelines.settings.model import Settings

DIAL_TIMEOUT_S = 5.0
SERVE_HINT = "start it with `crm-pipelines sandbox serve`"


class ConnectionUnavailable(RuntimeError):
    """A connection that cannot be opened: a missing secret, no sandbox, or nobody answering."""


@dataclass(frozen=True)
class Secrets:
    """Secret values by name, as read from the environment (or Dagster ``EnvVar``s); never logged."""

    values: dict[str, str]

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value or None


def sandbox_endpoints(settings: Settings) -> dict:
    path = Path(settings.sandbox.data_dir) / settings.sandbox.endpoints_file
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def target_of(settings: Settings, crm: str, secrets: Secrets) -> str:
    """``api`` or ``sandbox``: as stated, else the API as soon as any of the connection's secrets is set."""
    conn = getattr(settings.connections, crm)
    if conn.target:
        return conn.target
    return "api" if any(secrets.get(name) for name in secret_names(settings, crm)) else "sandbox"


def writes_on(settings: Settings, crm: str, secrets: Secrets) -> bool:
    """OPS-10: whether the sync writes to this CRM: as stated, else on for the sandbox and off for the real
    API until someone turns it on (a plan is made and shown either way)."""
    stated = getattr(settings.connections, crm).writes
    if stated is not None:
        return stated
    return target_of(settings, crm, secrets) == "sandbox"


def secret_names(settings: Settings, crm: str) -> list[str]:
    conn = getattr(settings.connections, crm)
    return [getattr(conn, field) for field in type(conn).model_fields if field.endswith("_env")]


def _sandbox(settings: Settings, crm: str) -> tuple[dict, str | None]:
    endpoints = sandbox_endpoints(settings)
    sandbox = endpoints.get(crm)
    if not sandbox:
        raise ConnectionUnavailable(
            f"{crm}: target is the sandbox but none is running in {settings.sandbox.data_dir} ({SERVE_HINT}; "
            f"for the real API set its secrets or `connections.{crm}.target: api`)"
        )
    dial(crm, sandbox["base_url"], sandbox=True)
    return sandbox, endpoints.get("ca_bundle")


def dial(crm: str, url: str, *, sandbox: bool) -> None:
    """One TCP connect to the URL's host and port; raises ``ConnectionUnavailable`` naming them."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=DIAL_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        hint = f"; the sandbox is not running ({SERVE_HINT})" if sandbox else ""
        raise ConnectionUnavailable(f"{crm}: nothing answers at {host}:{port} ({reason}){hint}") from None


def _waits(conn: Any) -> dict[str, float]:
    """How long the connection's calls wait for faults and for answers (issue 18), as its settings say."""
    return {"retry_budget_s": conn.retry_budget_s, "read_timeout_s": conn.read_timeout_s}


def _hubspot_limits(conn: Any) -> RateLimits:
    """The portal's rate buckets as the connection's settings describe it (tier, API add-on; FACTS §4)."""
    return hubspot_limits(conn.tier, conn.api_limit_increase)


def _missing(crm: str, names: list[str], what: str) -> ConnectionUnavailable:
    listed = ", ".join(names)
    return ConnectionUnavailable(f"{crm}: target is the API but {listed} {what} not set ({what} a secret)")


def hubspot_client(
    settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> HubSpotClient:
    conn = settings.connections.hubspot
    budget = CallBudget("hubspot", conn.api_call_limit, ledger)
    if target_of(settings, "hubspot", secrets) == "sandbox":
        sandbox, ca_bundle = _sandbox(settings, "hubspot")
        token = PrivateAppToken(sandbox["credentials"]["access_token"])
        client = HubSpotClient("hubspot", sandbox["base_url"], token, budget=budget, meter=meter, ca_bundle=ca_bundle,
                               limits=_hubspot_limits(conn), **_waits(conn))
        client.target = "sandbox"
        return client
    base_url = str(conn.base_url).rstrip("/")
    token, refresh = secrets.get(conn.access_token_env), secrets.get(conn.oauth_refresh_token_env)
    if token:
        auth: Any = PrivateAppToken(token)
    elif refresh:
        oauth = [conn.oauth_client_id_env, conn.oauth_client_secret_env]
        lacking = [name for name in oauth if not secrets.get(name)]
        if lacking:
            raise _missing("hubspot", lacking, "is" if len(lacking) == 1 else "are")
        client_id, client_secret = (secrets.get(name) for name in oauth)
        auth = OAuthRefreshToken("hubspot", f"{base_url}/oauth/v1/token", client_id, client_secret, refresh)
    else:
        raise ConnectionUnavailable(
            f"hubspot: target is the API but {conn.access_token_env} is not set (a private app's token; or OAuth "
            f"with {conn.oauth_refresh_token_env}, {conn.oauth_client_id_env} and {conn.oauth_client_secret_env})"
        )
    dial("hubspot", base_url, sandbox=False)
    return HubSpotClient("hubspot", base_url, auth, budget=budget, meter=meter, limits=_hubspot_limits(conn),
                         **_waits(conn))


def dynamics_sandbox_auth(sandbox: dict) -> ClientCredentials:
    """Client credentials for a running Dynamics sandbox, from what it announces (``endpoints.json``):
    the sandbox is both the organisation and its own Entra ID authority."""
    creds = sandbox["credentials"]
    return ClientCredentials(
        "dynamics",
        tenant_id=creds["tenant_id"],
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        org_url=sandbox["base_url"],
        authority_url=sandbox["base_url"],
        scope=creds.get("scope"),
    )


def dynamics_client(
    settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> DynamicsClient:
    conn = settings.connections.dynamics
    budget = CallBudget("dynamics", conn.api_call_limit, ledger)
    if target_of(settings, "dynamics", secrets) == "sandbox":
        sandbox, ca_bundle = _sandbox(settings, "dynamics")
        auth = dynamics_sandbox_auth(sandbox)
        client = DynamicsClient("dynamics", sandbox["base_url"], auth, budget=budget, meter=meter, ca_bundle=ca_bundle,
                                **_waits(conn))
        client.target = "sandbox"
        return client
    names = [conn.tenant_id_env, conn.client_id_env, conn.client_secret_env]
    lacking = [name for name in names if not secrets.get(name)]
    if lacking:
        raise _missing("dynamics", lacking, "is" if len(lacking) == 1 else "are")
    if not conn.org_url:
        raise ConnectionUnavailable("dynamics: target is the API but `connections.dynamics.org_url` is not set")
    org_url = str(conn.org_url).rstrip("/")
    tenant, client_id, client_secret = (secrets.get(name) for name in names)
    auth = ClientCredentials(
        "dynamics",
        tenant_id=tenant,
        client_id=client_id,
        client_secret=client_secret,
        org_url=org_url,
        authority_url=str(conn.authority_url).rstrip("/"),
    )
    dial("dynamics", org_url, sandbox=False)
    return DynamicsClient("dynamics", org_url, auth, budget=budget, meter=meter, **_waits(conn))


def salesforce_client(
    settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> SalesforceClient:
    conn = settings.connections.salesforce
    budget = CallBudget("salesforce", conn.api_call_limit, ledger)
    if target_of(settings, "salesforce", secrets) == "sandbox":
        sandbox, ca_bundle = _sandbox(settings, "salesforce")
        creds = sandbox["credentials"]
        auth = SalesforceClientCredentials(
            "salesforce", creds["consumer_key"], creds["consumer_secret"], login_url=sandbox["base_url"]
        )
        client = SalesforceClient(
            "salesforce", auth, api_version=creds["api_version"], budget=budget, meter=meter, ca_bundle=ca_bundle,
            **_waits(conn),
        )
        client.target = "sandbox"
        return client
    client_id = secrets.get(conn.client_id_env)
    if not client_id:
        raise ConnectionUnavailable(
            f"salesforce: target is the API but {conn.client_id_env} is not set (the connected app's consumer key, "
            f"with {conn.client_secret_env}, {conn.refresh_token_env}, or {conn.username_env} + "
            f"{conn.private_key_env})"
        )
    try:
        auth = make_auth(
            "salesforce",
            client_id=client_id,
            client_secret=secrets.get(conn.client_secret_env),
            username=secrets.get(conn.username_env),
            private_key_pem=secrets.get(conn.private_key_env),
            refresh_token=secrets.get(conn.refresh_token_env),
            login=conn.login,
            login_url=str(conn.login_url) if conn.login_url else None,
        )
    except ValueError as e:
        raise ConnectionUnavailable(str(e)) from None
    dial("salesforce", auth.token_url, sandbox=False)
    return SalesforceClient(
        "salesforce", auth, api_version=conn.api_version, budget=budget, meter=meter, **_waits(conn)
    )


OPENERS: dict[str, Callable[..., Any]] = {
    "hubspot": hubspot_client,
    "salesforce": salesforce_client,
    "dynamics": dynamics_client,
}


def open_client(
    crm: str, settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> Any:
    try:
        opener = OPENERS[crm]
    except KeyError:
        raise KeyError(f"no connector for {crm}") from None
    return opener(settings, secrets, ledger=ledger, meter=meter)

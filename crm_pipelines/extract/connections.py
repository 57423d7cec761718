"""Opening a configured connection: the real API when credentials are set, else the bundled sandbox (TOP-2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from crm_pipelines.crm.budget import CallBudget, CallLedger
from crm_pipelines.crm.dynamics.auth import ClientCredentials
from crm_pipelines.crm.dynamics.client import DynamicsClient
from crm_pipelines.crm.hubspot.auth import OAuthRefreshToken, PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.auth import ClientCredentials as SalesforceClientCredentials
from crm_pipelines.crm.salesforce.auth import make_auth
from crm_pipelines.crm.salesforce.client import SalesforceClient
from crm_pipelines.sandbox.endpoints import ENDPOINTS_FILE
from crm_pipelines.settings.model import Settings


class ConnectionUnavailable(RuntimeError):
    """Neither credentials nor a running sandbox for a connection."""


@dataclass(frozen=True)
class Secrets:
    """Secret values by name, as read from the environment (or Dagster ``EnvVar``s); never logged."""

    values: dict[str, str]

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value or None


def sandbox_endpoints(settings: Settings) -> dict:
    path = Path(settings.sandbox.data_dir) / ENDPOINTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def hubspot_client(
    settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> HubSpotClient:
    conn = settings.connections.hubspot
    budget = CallBudget("hubspot", conn.api_call_limit, ledger if conn.api_call_limit else None)
    token = secrets.get(conn.access_token_env)
    refresh = secrets.get(conn.oauth_refresh_token_env)
    base_url = str(conn.base_url).rstrip("/")
    if token:
        return HubSpotClient("hubspot", base_url, PrivateAppToken(token), budget=budget, meter=meter)
    if refresh:
        client_id, client_secret = secrets.get(conn.oauth_client_id_env), secrets.get(conn.oauth_client_secret_env)
        if not (client_id and client_secret):
            raise ConnectionUnavailable(
                f"hubspot: {conn.oauth_refresh_token_env} is set but {conn.oauth_client_id_env} or "
                f"{conn.oauth_client_secret_env} is not"
            )
        auth = OAuthRefreshToken("hubspot", f"{base_url}/oauth/v1/token", client_id, client_secret, refresh)
        return HubSpotClient("hubspot", base_url, auth, budget=budget, meter=meter)
    sandbox = sandbox_endpoints(settings).get("hubspot")
    if not sandbox:
        raise ConnectionUnavailable(
            f"hubspot: no credentials ({conn.access_token_env}, or OAuth via {conn.oauth_refresh_token_env}) and no "
            f"running sandbox in {settings.sandbox.data_dir} (start one with `crm-pipelines sandbox serve`)"
        )
    client = HubSpotClient(
        "hubspot",
        sandbox["base_url"],
        PrivateAppToken(sandbox["credentials"]["access_token"]),
        budget=budget,
        meter=meter,
        ca_bundle=sandbox_endpoints(settings).get("ca_bundle"),
    )
    client.target = "sandbox"
    return client


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
    budget = CallBudget("dynamics", conn.api_call_limit, ledger if conn.api_call_limit else None)
    tenant, client_id = secrets.get(conn.tenant_id_env), secrets.get(conn.client_id_env)
    client_secret = secrets.get(conn.client_secret_env)
    if conn.org_url and tenant and client_id and client_secret:
        org_url = str(conn.org_url).rstrip("/")
        auth = ClientCredentials(
            "dynamics",
            tenant_id=tenant,
            client_id=client_id,
            client_secret=client_secret,
            org_url=org_url,
            authority_url=str(conn.authority_url).rstrip("/"),
        )
        return DynamicsClient("dynamics", org_url, auth, budget=budget, meter=meter)
    endpoints = sandbox_endpoints(settings)
    sandbox = endpoints.get("dynamics")
    if not sandbox:
        raise ConnectionUnavailable(
            f"dynamics: no credentials (org_url and {conn.tenant_id_env}, {conn.client_id_env}, "
            f"{conn.client_secret_env}) and no running sandbox in {settings.sandbox.data_dir}"
        )
    auth = dynamics_sandbox_auth(sandbox)
    client = DynamicsClient(
        "dynamics", sandbox["base_url"], auth, budget=budget, meter=meter, ca_bundle=endpoints.get("ca_bundle")
    )
    client.target = "sandbox"
    return client


def salesforce_client(
    settings: Settings, secrets: Secrets, *, ledger: CallLedger | None = None, meter: Meter | None = None
) -> SalesforceClient:
    conn = settings.connections.salesforce
    budget = CallBudget("salesforce", conn.api_call_limit, ledger if conn.api_call_limit else None)
    client_id = secrets.get(conn.client_id_env)
    if client_id:
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
        return SalesforceClient("salesforce", auth, api_version=conn.api_version, budget=budget, meter=meter)
    endpoints = sandbox_endpoints(settings)
    sandbox = endpoints.get("salesforce")
    if not sandbox:
        raise ConnectionUnavailable(
            f"salesforce: no credentials ({conn.client_id_env} with {conn.client_secret_env}, "
            f"{conn.refresh_token_env}, or {conn.username_env} + {conn.private_key_env}) and no running sandbox "
            f"in {settings.sandbox.data_dir}"
        )
    creds = sandbox["credentials"]
    auth = SalesforceClientCredentials(
        "salesforce", creds["consumer_key"], creds["consumer_secret"], login_url=sandbox["base_url"]
    )
    client = SalesforceClient(
        "salesforce",
        auth,
        api_version=creds["api_version"],
        budget=budget,
        meter=meter,
        ca_bundle=endpoints.get("ca_bundle"),
    )
    client.target = "sandbox"
    return client

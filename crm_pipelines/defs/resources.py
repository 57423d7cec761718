"""Dagster resources: the state database and the CRM connections, thin wrappers over plain clients."""

from __future__ import annotations

import os
from functools import cached_property

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.crm.metering import Meter
from crm_pipelines.extract.connections import Secrets, dynamics_client, hubspot_client, salesforce_client
from crm_pipelines.settings import Settings, load_settings
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.db import create_state_engine


class StateDatabase(dg.ConfigurableResource):
    """The sync's state database (mirror tables, cursors, API usage). URL may carry a password: use EnvVar."""

    url: str

    _engine: Engine | None = PrivateAttr(default=None)

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_state_engine(self.url)
        return self._engine

    def ledger(self) -> SqlCallLedger:
        return SqlCallLedger(self.engine())


class CrmConnections(dg.ConfigurableResource):
    """The configured CRM connections. Secret fields are bound to ``EnvVar``s when those are set; with none
    set, connections go to the bundled sandboxes (TOP-2)."""

    settings_path: str | None = None
    hubspot_access_token: str | None = None
    hubspot_client_id: str | None = None
    hubspot_client_secret: str | None = None
    hubspot_refresh_token: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: str | None = None
    salesforce_username: str | None = None
    salesforce_private_key: str | None = None
    salesforce_refresh_token: str | None = None
    dynamics_tenant_id: str | None = None
    dynamics_client_id: str | None = None
    dynamics_client_secret: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.settings_path)

    def _secrets(self) -> Secrets:
        c, d, f = (
            self.settings.connections.hubspot,
            self.settings.connections.dynamics,
            self.settings.connections.salesforce,
        )
        return Secrets(
            {
                c.access_token_env: self.hubspot_access_token or "",
                c.oauth_client_id_env: self.hubspot_client_id or "",
                c.oauth_client_secret_env: self.hubspot_client_secret or "",
                c.oauth_refresh_token_env: self.hubspot_refresh_token or "",
                f.client_id_env: self.salesforce_client_id or "",
                f.client_secret_env: self.salesforce_client_secret or "",
                f.username_env: self.salesforce_username or "",
                f.private_key_env: self.salesforce_private_key or "",
                f.refresh_token_env: self.salesforce_refresh_token or "",
                d.tenant_id_env: self.dynamics_tenant_id or "",
                d.client_id_env: self.dynamics_client_id or "",
                d.client_secret_env: self.dynamics_client_secret or "",
            }
        )

    def hubspot(self, state: StateDatabase, meter: Meter) -> HubSpotClient:
        return hubspot_client(self.settings, self._secrets(), ledger=state.ledger(), meter=meter)

    def client(self, crm: str, state: StateDatabase, meter: Meter):
        if crm == "hubspot":
            return self.hubspot(state, meter)
        if crm == "salesforce":
            return salesforce_client(self.settings, self._secrets(), ledger=state.ledger(), meter=meter)
        if crm == "dynamics":
            return dynamics_client(self.settings, self._secrets(), ledger=state.ledger(), meter=meter)
        raise KeyError(f"no connector for {crm}")

    def api_call_limit(self, crm: str) -> int | None:
        return getattr(self.settings.connections, crm).api_call_limit


def env_var_if_set(name: str) -> dg.EnvVar | None:
    """An ``EnvVar`` for a secret that is set, else None: unset secrets mean "use the sandbox"."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources(settings: Settings, settings_path: str | None) -> dict[str, dg.ConfigurableResource]:
    hs, sf, dy = settings.connections.hubspot, settings.connections.salesforce, settings.connections.dynamics
    state_url = os.environ.get("CRM_PIPELINES_STATE_DB_URL")
    return {
        "state": StateDatabase(
            url=dg.EnvVar("CRM_PIPELINES_STATE_DB_URL") if state_url else settings.state_database_url
        ),
        "crm_connections": CrmConnections(
            settings_path=settings_path,
            hubspot_access_token=env_var_if_set(hs.access_token_env),
            hubspot_client_id=env_var_if_set(hs.oauth_client_id_env),
            hubspot_client_secret=env_var_if_set(hs.oauth_client_secret_env),
            hubspot_refresh_token=env_var_if_set(hs.oauth_refresh_token_env),
            salesforce_client_id=env_var_if_set(sf.client_id_env),
            salesforce_client_secret=env_var_if_set(sf.client_secret_env),
            salesforce_username=env_var_if_set(sf.username_env),
            salesforce_private_key=env_var_if_set(sf.private_key_env),
            salesforce_refresh_token=env_var_if_set(sf.refresh_token_env),
            dynamics_tenant_id=env_var_if_set(dy.tenant_id_env),
            dynamics_client_id=env_var_if_set(dy.client_id_env),
            dynamics_client_secret=env_var_if_set(dy.client_secret_env),
        ),
    }

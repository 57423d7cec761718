"""Dagster resources: the state database and the CRM connections, thin wrappers over plain clients."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.crm.metering import Meter
from crm_pipelines.settings import Settings, load_settings
from crm_pipelines.settings.load import STATE_DB_ENV
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


class CrmSettings(dg.ConfigurableResource):
    """The settings file (YAML) every layer reads; secrets are not in it (see the per-CRM resources)."""

    settings_path: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.settings_path)


class HubSpotResource(dg.ConfigurableResource):
    """HubSpot's secrets, bound to ``EnvVar``s: a private app's token, or OAuth (client id, secret, refresh)."""

    access_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None

    def secrets(self, settings: Settings) -> dict[str, str]:
        c = settings.connections.hubspot
        return {
            c.access_token_env: self.access_token or "",
            c.oauth_client_id_env: self.client_id or "",
            c.oauth_client_secret_env: self.client_secret or "",
            c.oauth_refresh_token_env: self.refresh_token or "",
        }


class SalesforceResource(dg.ConfigurableResource):
    """Salesforce's secrets, bound to ``EnvVar``s: a connected app with a secret, refresh token or JWT key."""

    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    refresh_token: str | None = None

    def secrets(self, settings: Settings) -> dict[str, str]:
        c = settings.connections.salesforce
        return {
            c.client_id_env: self.client_id or "",
            c.client_secret_env: self.client_secret or "",
            c.username_env: self.username or "",
            c.private_key_env: self.private_key or "",
            c.refresh_token_env: self.refresh_token or "",
        }


class DynamicsResource(dg.ConfigurableResource):
    """Dynamics 365's secrets, bound to ``EnvVar``s: an Entra ID app registration (client credentials)."""

    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    def secrets(self, settings: Settings) -> dict[str, str]:
        c = settings.connections.dynamics
        return {
            c.tenant_id_env: self.tenant_id or "",
            c.client_id_env: self.client_id or "",
            c.client_secret_env: self.client_secret or "",
        }


class CrmConnections(dg.ConfigurableResource):
    """Opens a client per CRM from the settings and that CRM's secrets (``crm.connections``: real API or
    sandbox, as each connection's ``target`` says)."""

    crm_settings: CrmSettings
    hubspot: HubSpotResource
    salesforce: SalesforceResource
    dynamics: DynamicsResource

    @property
    def settings(self) -> Settings:
        return self.crm_settings.settings

    def secrets(self) -> Secrets:
        s = self.settings
        return Secrets({**self.hubspot.secrets(s), **self.salesforce.secrets(s), **self.dynamics.secrets(s)})

    def client(self, crm: str, state: StateDatabase, meter: Meter) -> Any:
        return open_client(crm, self.settings, self.secrets(), ledger=state.ledger(), meter=meter)

    def api_call_limit(self, crm: str) -> int | None:
        return getattr(self.settings.connections, crm).api_call_limit


def _env(name: str) -> dg.EnvVar | None:
    """An ``EnvVar`` for a secret that is set, else None (a connection with none set goes to the sandbox
    unless its ``target`` says ``api``; then opening it names the missing variable)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _state_url(settings: Settings) -> str | dg.EnvVar:
    # the URL may carry a password: from the environment it stays an EnvVar, out of Dagster's run config
    return dg.EnvVar(STATE_DB_ENV) if os.environ.get(STATE_DB_ENV) else settings.state_database_url


def build_resources(
    settings: Settings,
    settings_path: str | None,
    *,
    state_url: str | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location, bound here and nowhere else. ``state_url`` pins the state
    database (benches and tests that work in their own); else ``$CRM_PIPELINES_STATE_DB_URL`` or the settings.
    ``secrets``: per CRM, resource fields given in memory (a bench's sandbox OAuth app) over the ``EnvVar``s."""
    given = {crm: dict(values) for crm, values in (secrets or {}).items()}
    hs, sf, dy = settings.connections.hubspot, settings.connections.salesforce, settings.connections.dynamics
    crm_settings = CrmSettings(settings_path=settings_path)
    hubspot = HubSpotResource(**{
        "access_token": _env(hs.access_token_env),
        "client_id": _env(hs.oauth_client_id_env),
        "client_secret": _env(hs.oauth_client_secret_env),
        "refresh_token": _env(hs.oauth_refresh_token_env),
        **given.get("hubspot", {}),
    })
    salesforce = SalesforceResource(**{
        "client_id": _env(sf.client_id_env),
        "client_secret": _env(sf.client_secret_env),
        "username": _env(sf.username_env),
        "private_key": _env(sf.private_key_env),
        "refresh_token": _env(sf.refresh_token_env),
        **given.get("salesforce", {}),
    })
    dynamics = DynamicsResource(**{
        "tenant_id": _env(dy.tenant_id_env),
        "client_id": _env(dy.client_id_env),
        "client_secret": _env(dy.client_secret_env),
        **given.get("dynamics", {}),
    })
    return {
        "state": StateDatabase(url=state_url or _state_url(settings)),
        "crm_settings": crm_settings,
        "hubspot": hubspot,
        "salesforce": salesforce,
        "dynamics": dynamics,
        "crm_connections": CrmConnections(
            crm_settings=crm_settings, hubspot=hubspot, salesforce=salesforce, dynamics=dynamics
        ),
    }

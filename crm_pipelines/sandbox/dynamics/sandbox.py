"""The Dynamics 365 sandbox: the Dataverse Web API v9.2 and an Entra ID token endpoint on one port.

State lives in ``dynamics.sqlite3`` of the data directory. The app registration (tenant, client id and
secret) survives resets, so scripts configured once keep working; issued tokens do not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.base import CrmSandbox, UniverseSpec
from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.api import Organization, WebApi
from crm_pipelines.sandbox.dynamics.auth import issue, new_app
from crm_pipelines.sandbox.dynamics.catalog import API_PATH, BY_SET
from crm_pipelines.sandbox.dynamics.limits import ServiceProtection, requests_exceeded
from crm_pipelines.sandbox.dynamics.messages import ApiRequest
from crm_pipelines.sandbox.dynamics.seed import seed_organization
from crm_pipelines.sandbox.dynamics.store import DynamicsStore
from crm_pipelines.sandbox.faults import ADMIN_PREFIX, FaultBodies, FaultConfig

DEV_TOKEN_LIFETIME_S = 10 * 365 * 86400  # the announced token, for curl and benchmarks


class DynamicsFaultBodies(FaultBodies):
    def throttled(self, request: Request) -> Response:
        return requests_exceeded(retry_after_s=5).response()

    def server_error(self, request: Request, status: int) -> Response:
        messages = {500: "An unexpected error occurred.", 502: "Bad Gateway", 503: "Service Unavailable",
                    504: "The request timed out."}
        return errors.DataverseError(status, errors.UNEXPECTED, messages.get(status, "error")).response()


class DynamicsSandbox(CrmSandbox):
    name = "dynamics"
    default_port = 8472

    def __init__(self, data_dir: Path, spec: UniverseSpec) -> None:
        super().__init__(data_dir, spec)
        self.store: DynamicsStore | None = None
        self.limits = ServiceProtection()
        self.org: Organization | None = None
        self.api: WebApi | None = None
        self.org_url: str | None = None  # the URL clients know the org by; default: the sandbox's own

    @property
    def public_url(self) -> str:
        return self.org_url or self.base_url

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """``org_url`` (``--dynamics-org-url``): serve as e.g. ``https://contoso.crm.dynamics.com`` (issue 16).

        Scopes, ``@odata.context``/``nextLink`` URLs and 401 challenges name the org URL; the token
        endpoint stays on the sandbox's own address, as Entra ID is a host of its own."""
        unknown = set(settings) - {"org_url"}
        if unknown:
            raise ValueError(f"unknown dynamics settings {sorted(unknown)}")
        if settings.get("org_url"):
            url = str(settings["org_url"]).rstrip("/")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"--dynamics-org-url must be an origin like https://contoso.crm.dynamics.com, "
                                 f"not {url}")
            self.org_url = url
            if self.org is not None:
                self.org.base_url = self.public_url

    # -- lifecycle ----------------------------------------------------------------------------------
    def open(self, *, reset: bool, progress: Callable[[str], Any] = print) -> None:
        if self.store is None:
            self.store = DynamicsStore(self.data_dir / "dynamics.sqlite3")
            self.org = Organization(self.store, self.limits)
            self.org.base_url = self.public_url
            self.api = WebApi(self.org)
        store = self.store
        seeded = store.get_meta("universe")
        if seeded and not reset:
            if seeded != {"seed": self.spec.seed, "scale": self.spec.scale}:
                raise SystemExit(
                    f"{store.path} holds seed {seeded['seed']} scale {seeded['scale']}; "
                    "pass --reset to regenerate with other values"
                )
            store.create_indexes()
            return
        store.wipe()
        universe = self.universe()
        users = seed_organization(store, universe, progress)
        app = store.get_meta("app")
        if app is None:
            app = new_app()
            app["access_token"] = issue(store, app["client_id"], DEV_TOKEN_LIFETIME_S)
            store.set_meta("app", app)
        else:
            store.put_token(app["access_token"], app["client_id"], _far_future())
        store.set_meta("app_user", {"systemuserid": next(iter(users.values())),
                                    "businessunitid": str(uuid.uuid5(uuid.NAMESPACE_URL, "bu" + app["tenant_id"])),
                                    "organizationid": str(uuid.uuid5(uuid.NAMESPACE_URL, "org" + app["tenant_id"]))})
        store.set_meta("manifest", universe.manifest())
        store.set_meta("universe", {"seed": self.spec.seed, "scale": self.spec.scale})

    def set_base_url(self, base_url: str) -> None:
        super().set_base_url(base_url)
        if self.org is not None:
            self.org.base_url = self.public_url

    def configure_faults(self, config: FaultConfig) -> None:
        super().configure_faults(config)
        self.limits.configure(config)

    # -- what the framework asks for ----------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        assert self.store is not None
        app = self.store.get_meta("app")
        authority = f"{self.base_url}/{app['tenant_id']}"
        return {
            "tenant_id": app["tenant_id"],
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "authority": authority,
            "token_url": f"{authority}/oauth2/v2.0/token",
            "scope": f"{self.public_url}/.default",
            "org_url": self.public_url,
            "api_url": f"{self.public_url}{API_PATH}",
            "access_token": app["access_token"],
        }

    def stats(self) -> dict[str, dict[str, int]]:
        assert self.store is not None
        return {name: {"live": live, "deleted": deleted} for name, (live, deleted) in self.store.counts().items()}

    def manifest(self) -> dict[str, Any]:
        assert self.store is not None
        return self.store.get_meta("manifest") or {}

    def fault_bodies(self) -> FaultBodies:
        return DynamicsFaultBodies()

    def api_routes(self) -> list[BaseRoute]:
        assert self.api is not None
        return self.api.routes()

    # -- a person in Dynamics' UI -------------------------------------------------------------------
    def ui_routes(self) -> list[BaseRoute]:
        base = f"{ADMIN_PREFIX}/ui/{{entity_set}}"
        return [
            Route(base, self._ui_create, methods=["POST"]),
            Route(base + "/{record_id}", self._ui_update, methods=["PATCH"]),
            Route(base + "/{record_id}", self._ui_delete, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/oauth/expire", self._expire_tokens, methods=["POST"]),
        ]

    async def _ui(self, request: Request, method: str, with_id: bool) -> Response:
        """The UI saves through the same platform pipeline as the API (new version, modifiedon)."""
        assert self.api is not None
        entity_set = request.path_params["entity_set"]
        if entity_set not in BY_SET:
            return errors.segment_not_found(entity_set).response()
        path = f"{entity_set}({request.path_params['record_id']})" if with_id else entity_set
        headers = {"prefer": "return=representation"} if method != "DELETE" else {}
        if with_id:
            headers["if-match"] = "*"
        try:
            at = clock.parse_at(request.query_params.get("at"))  # an edit made at a given time (clock.py)
            body = await request.body()
            with clock.stamped_at(at):
                response = self.api.dispatch(ApiRequest(method, path, {}, headers, body))
        except clock.EditTimeError as err:
            return errors.bad_request(str(err)).response()
        return response.to_starlette()

    async def _ui_create(self, request: Request) -> Response:
        return await self._ui(request, "POST", False)

    async def _ui_update(self, request: Request) -> Response:
        return await self._ui(request, "PATCH", True)

    async def _ui_delete(self, request: Request) -> Response:
        return await self._ui(request, "DELETE", True)

    async def _expire_tokens(self, request: Request) -> Response:
        """Let every token issued by the token endpoint run out now (the announced dev token stays valid)."""
        assert self.store is not None
        app = self.store.get_meta("app")
        expired = self.store.expire_tokens()
        self.store.db.execute("UPDATE tokens SET expires_at = ? WHERE token = ?", (_far_future(), app["access_token"]))
        return JSONResponse({"expired": expired - 1})


def _far_future() -> float:
    return time.time() + DEV_TOKEN_LIFETIME_S


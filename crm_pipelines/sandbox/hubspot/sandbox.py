"""The HubSpot sandbox: CRM v3/v4 API of ``api.hubapi.com`` over the portal in ``hubspot.sqlite3``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.base import CrmSandbox, UniverseSpec
from crm_pipelines.sandbox.faults import ADMIN_PREFIX, FaultBodies, FaultConfig
from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.api import Context, ObjectsApi, resolve, unmatched_route
from crm_pipelines.sandbox.hubspot.associations_api import AssociationsApi
from crm_pipelines.sandbox.hubspot.catalog import ADMIN_PROPERTIES, OBJECT_TYPES
from crm_pipelines.sandbox.hubspot.limits import Limits, rate_limited, ten_secondly_exceeded
from crm_pipelines.sandbox.hubspot.meta_api import OAUTH_APP, PRIVATE_APP, SCOPES, MetaApi, new_token
from crm_pipelines.sandbox.hubspot.portal import SOURCE_UI, Portal
from crm_pipelines.sandbox.hubspot.search import token_match
from crm_pipelines.sandbox.hubspot.seed import seed_portal
from crm_pipelines.sandbox.hubspot.store import HubSpotStore


class HubSpotFaultBodies(FaultBodies):
    # Injected answers carry a correlation id too, the header equal to the body's (FACTS §4).
    def throttled(self, request: Request) -> Response:
        # search has its own per-second limit and is exempt from the ten-secondly one (FACTS §2): its 429 says
        # so and asks for a second, as the sandbox's own search limiter does
        if request.url.path.endswith("/search"):
            return rate_limited("SECONDLY", "You have reached your secondly limit.", 1.0, errors.correlation_id())
        return ten_secondly_exceeded(errors.correlation_id())

    def server_error(self, request: Request, status: int) -> Response:
        messages = {500: "internal error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return errors.HubSpotError(status, "INTERNAL_ERROR", messages.get(status, "error")).response()


class HubSpotSandbox(CrmSandbox):
    name = "hubspot"
    default_port = 8470

    def __init__(self, data_dir: Path, spec: UniverseSpec) -> None:
        super().__init__(data_dir, spec)
        self.store: HubSpotStore | None = None
        self.limits = Limits()
        self.ctx: Context | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def open(self, *, reset: bool, progress: Callable[[str], Any] = print) -> None:
        if self.store is None:
            self.store = HubSpotStore(self.data_dir / "hubspot.sqlite3")
            self.store.db.create_function("hs_token_match", 2, token_match, deterministic=True)
            self.ctx = Context(Portal(self.store), self.limits)
            self.ctx.base_url = self.base_url
        seeded = self.store.get_meta("universe")
        if seeded and not reset:
            if seeded != {"seed": self.spec.seed, "scale": self.spec.scale}:
                raise SystemExit(
                    f"{self.store.path} holds seed {seeded['seed']} scale {seeded['scale']}; "
                    "pass --reset to regenerate with other values"
                )
            self._admin_properties()  # a data directory seeded before they existed gains them
            return
        self.store.wipe()
        self._admin_properties()
        universe = self.universe()
        seed_portal(self.store, universe, progress)
        self.store.set_meta("manifest", universe.manifest())
        if self.store.get_meta("credentials") is None:
            self._issue_credentials()
        self.store.set_meta("universe", {"seed": self.spec.seed, "scale": self.spec.scale})

    def _admin_properties(self) -> None:
        """The custom properties the portal's admin made for crm_pipelines (``ADMIN_PROPERTIES``); one archived
        since stays archived."""
        assert self.store is not None
        for object_type, definition in ADMIN_PROPERTIES.items():
            self.store.add_custom_property(object_type, definition["name"], definition)

    def _issue_credentials(self) -> None:
        assert self.store is not None
        private = new_token("private")
        refresh = new_token("refresh")
        self.store.put_token(private, "private_app", PRIVATE_APP, SCOPES, None)
        self.store.put_token(refresh, "oauth_refresh", OAUTH_APP, SCOPES, None)
        self.store.set_meta("oauth_client", {"client_id": new_token("client"), "client_secret": new_token("secret")})
        self.store.set_meta("credentials", {"access_token": private, "refresh_token": refresh})

    def set_base_url(self, base_url: str) -> None:
        super().set_base_url(base_url)
        if self.ctx is not None:
            self.ctx.base_url = base_url

    def configure_faults(self, config: FaultConfig) -> None:
        super().configure_faults(config)
        self.limits.configure(config)

    # -- what the framework asks for ----------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        assert self.store is not None
        creds = self.store.get_meta("credentials")
        client = self.store.get_meta("oauth_client")
        return {
            "access_token": creds["access_token"],
            "oauth": {
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "refresh_token": creds["refresh_token"],
                "token_url": f"{self.base_url}/oauth/v1/token",
            },
        }

    def stats(self) -> dict[str, dict[str, int]]:
        assert self.store is not None
        counts = self.store.counts()
        out = {
            name: {"live": counts.get(name, (0, 0))[0], "deleted": counts.get(name, (0, 0))[1]}
            for name in OBJECT_TYPES
        }
        out["owners"] = {"live": len(self.store.owners()), "deleted": len(self.store.owners(archived=True))}
        return out

    def manifest(self) -> dict[str, Any]:
        assert self.store is not None
        return self.store.get_meta("manifest") or {}

    def fault_bodies(self) -> FaultBodies:
        return HubSpotFaultBodies()

    def api_routes(self) -> list[BaseRoute]:
        assert self.ctx is not None
        api = [*ObjectsApi(self.ctx).routes(), *AssociationsApi(self.ctx).routes(), *MetaApi(self.ctx).routes()]
        return [*api, unmatched_route(self.ctx, api)]

    # -- a person in HubSpot's UI -------------------------------------------------------------------
    def ui_routes(self) -> list[BaseRoute]:
        base = f"{ADMIN_PREFIX}/ui/{{object_type}}"
        return [
            Route(base, self._ui_create, methods=["POST"]),
            Route(base + "/{object_id}", self._ui_update, methods=["PATCH"]),
            Route(base + "/{object_id}", self._ui_delete, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/oauth/expire", self._expire_tokens, methods=["POST"]),
        ]

    async def _expire_tokens(self, request: Request) -> Response:
        """Let every issued OAuth access token run out now, as if half an hour had passed."""
        assert self.store is not None
        expired = self.store.expire_access_tokens(int(time.time() * 1000) - 1000)
        return errors.json_response({"expired": expired})

    async def _ui(self, request: Request, action: Callable[[Portal, Any], Response]) -> Response:
        assert self.ctx is not None
        try:
            at = clock.parse_at(request.query_params.get("at"))  # an edit made at a given time (clock.py)
            with clock.stamped_at(at):
                return action(self.ctx.portal, resolve(request))
        except clock.EditTimeError as err:
            return errors.validation(str(err)).response()
        except errors.HubSpotError as err:
            return err.response()

    def _ui_record(self, portal: Portal, o: Any, request: Request):
        key = request.path_params["object_id"]
        record = portal.find(o, key, None)
        if record is None:
            raise errors.not_found(key)
        return record

    async def _ui_create(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        return await self._ui(
            request,
            lambda portal, o: errors.json_response(
                portal.render(portal.create(o, body.get("properties") or {}, source=SOURCE_UI)), 201
            ),
        )

    async def _ui_update(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")

        def act(portal: Portal, o: Any) -> Response:
            record = portal.update(
                o, self._ui_record(portal, o, request), body.get("properties") or {}, source=SOURCE_UI
            )
            return errors.json_response(portal.render(record, list(record.properties)))

        return await self._ui(request, act)

    async def _ui_delete(self, request: Request) -> Response:
        def act(portal: Portal, o: Any) -> Response:
            portal.archive(self._ui_record(portal, o, request))
            return Response(status_code=204)

        return await self._ui(request, act)

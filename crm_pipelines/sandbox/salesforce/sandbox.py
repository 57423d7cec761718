"""The Salesforce sandbox: a REST API instance URL over the org in ``salesforce.sqlite3``."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.base import CrmSandbox, UniverseSpec
from crm_pipelines.sandbox.faults import ADMIN_PREFIX, FaultBodies, FaultConfig
from crm_pipelines.sandbox.header_case import header_spelling_protocol
from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.auth import LOGIN_HOSTS, TokenEndpoint, issue_connected_app, new_session_token
from crm_pipelines.sandbox.salesforce.bulk_api import DEFAULT_BULK_QUERY_SECONDS, BulkQueryApi
from crm_pipelines.sandbox.salesforce.catalog import LATEST, ORG_ID
from crm_pipelines.sandbox.salesforce.composite_api import CompositeApi
from crm_pipelines.sandbox.salesforce.composite_request import CompositeRequestApi
from crm_pipelines.sandbox.salesforce.context import Context
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.limits import ApiUsage
from crm_pipelines.sandbox.salesforce.query import QueryEngine
from crm_pipelines.sandbox.salesforce.records import Org, sobject_or_404
from crm_pipelines.sandbox.salesforce.rest_api import RestApi, record_body
from crm_pipelines.sandbox.salesforce.seed import seed_org
from crm_pipelines.sandbox.salesforce.store import SalesforceStore

# Header names as Salesforce spells them (FACTS §15); the rest are title-cased (Content-Type, Retry-After).
SALESFORCE_HEADER_SPELLINGS = {
    "sforce-limit-info": "Sforce-Limit-Info",
    "sforce-locator": "Sforce-Locator",
    "sforce-numberofrecords": "Sforce-NumberOfRecords",
    "www-authenticate": "WWW-Authenticate",
}

COUNTED = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "User", "Task")


class SalesforceFaultBodies(FaultBodies):
    def throttled(self, request: Request) -> Response:
        # Salesforce never answers 429: an org over its limits refuses with 403 REQUEST_LIMIT_EXCEEDED (FACTS §4).
        return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.").response()

    def server_error(self, request: Request, status: int) -> Response:
        if status == 500:
            error_id = f"{secrets.randbelow(10**10)}-{secrets.randbelow(10**6)} ({-secrets.randbelow(10**9)})"
            return SalesforceError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this "
                                   f"ErrorId if you contact support: {error_id}").response()
        messages = {502: "Bad Gateway", 503: "Server Unavailable", 504: "Gateway Timeout"}
        return SalesforceError(status, "SERVER_UNAVAILABLE", messages.get(status, "error")).response()


class SalesforceSandbox(CrmSandbox):
    name = "salesforce"
    default_port = 8471

    def __init__(self, data_dir: Path, spec: UniverseSpec) -> None:
        super().__init__(data_dir, spec)
        self.store: SalesforceStore | None = None
        self.usage = ApiUsage()
        self.ctx: Context | None = None
        self.tokens: TokenEndpoint | None = None
        self.bulk_query_seconds = DEFAULT_BULK_QUERY_SECONDS

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """``bulk_query_seconds``: how long a Bulk API 2.0 query job takes (``--salesforce-bulk-seconds``)."""
        unknown = set(settings) - {"bulk_query_seconds"}
        if unknown:
            raise ValueError(f"unknown salesforce settings {sorted(unknown)}")
        if "bulk_query_seconds" in settings:
            seconds = float(settings["bulk_query_seconds"])
            if seconds < 0:
                raise ValueError("bulk_query_seconds must not be negative")
            self.bulk_query_seconds = seconds
            if self.ctx is not None:
                self.ctx.bulk_query_seconds = seconds

    # -- lifecycle ----------------------------------------------------------------------------------
    def open(self, *, reset: bool, progress: Callable[[str], Any] = print) -> None:
        if self.store is None:
            self.store = SalesforceStore(self.data_dir / "salesforce.sqlite3")
        seeded = self.store.get_meta("universe")
        if seeded and not reset:
            if seeded != {"seed": self.spec.seed, "scale": self.spec.scale}:
                raise SystemExit(
                    f"{self.store.path} holds seed {seeded['seed']} scale {seeded['scale']}; "
                    "pass --reset to regenerate with other values"
                )
        else:
            started = time.monotonic()
            self.store.wipe()
            universe = self.universe()
            api_user = seed_org(self.store, universe, progress)
            self.store.set_meta("manifest", universe.manifest())
            self._issue_credentials(api_user)
            self.store.set_meta("universe", {"seed": self.spec.seed, "scale": self.spec.scale})
            progress(f"salesforce: seeded in {time.monotonic() - started:.1f} s")
        creds = self.store.get_meta("credentials")
        settings = self.store.get_meta("settings") or {}
        org = Org(self.store, creds["user_id"], bool(settings.get("state_country_picklists", False)))
        if self.ctx is None:
            self.ctx = Context(self.store, org, self._engine(), self.usage, self.base_url, self.bulk_query_seconds)
            self.tokens = TokenEndpoint(self.store, self.base_url)
        else:  # a reset: the routes hold this context, so it is refreshed in place
            self.ctx.org, self.ctx.engine = org, self._engine()

    def _engine(self) -> QueryEngine:
        assert self.store is not None
        return QueryEngine(self.store, lambda: self.ctx is not None and self.ctx.org.state_country_picklists)

    def _issue_credentials(self, api_user: str) -> None:
        """The connected app survives a reset; the API user and its sessions are re-issued with the data."""
        assert self.store is not None
        if self.store.get_meta("connected_app") is None:
            issue_connected_app(self.store)
        old = self.store.get_meta("credentials") or {}
        session = old.get("access_token") or new_session_token()
        refresh = old.get("refresh_token") or "5Aep" + secrets.token_urlsafe(60)
        # The announced session does not time out (so a long demo keeps working) until an admin expires it.
        self.store.put_token(session, "access", api_user, None, None)
        self.store.put_token(refresh, "refresh", api_user, None, None)
        self.store.set_meta("credentials", {"access_token": session, "refresh_token": refresh, "user_id": api_user})

    def set_base_url(self, base_url: str) -> None:
        super().set_base_url(base_url)
        if self.ctx is not None:
            self.ctx.base_url = base_url
        if self.tokens is not None:
            self.tokens.base_url = base_url

    def configure_faults(self, config: FaultConfig) -> None:
        super().configure_faults(config)
        self.usage.configure(config)

    # -- what the framework asks for ----------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        assert self.store is not None
        creds = self.store.get_meta("credentials")
        app = self.store.get_meta("connected_app")
        key_file = self.data_dir / "salesforce-jwt-key.pem"
        if not key_file.exists():
            key_file.write_text(app["private_key"])
            key_file.chmod(0o600)
        user = self.store.get("User", creds["user_id"]) or {}
        return {
            "access_token": creds["access_token"],
            "instance_url": self.base_url,
            "api_version": LATEST,
            "org_id": ORG_ID,
            "username": user.get("Username"),
            "consumer_key": app["consumer_key"],
            "consumer_secret": app["consumer_secret"],
            "refresh_token": creds["refresh_token"],
            "private_key_file": str(key_file.resolve()),
            "token_url": f"{self.base_url}/services/oauth2/token",
            # A client configured for production or for a sandbox org logs in on one of these; both reach here.
            "login_hosts": list(LOGIN_HOSTS),
        }

    def stats(self) -> dict[str, dict[str, int]]:
        assert self.store is not None
        counts = self.store.counts()
        return {name: {"live": counts[name][0], "deleted": counts[name][1]} for name in COUNTED}

    def manifest(self) -> dict[str, Any]:
        assert self.store is not None
        return self.store.get_meta("manifest") or {}

    def fault_bodies(self) -> FaultBodies:
        return SalesforceFaultBodies()

    def http_protocol(self) -> str | type[asyncio.Protocol]:
        # Every answer, injected faults included, leaves with Salesforce's header spelling (issue 16).
        return header_spelling_protocol(SALESFORCE_HEADER_SPELLINGS)

    def api_routes(self) -> list[BaseRoute]:
        assert self.ctx is not None and self.tokens is not None
        token = [Route("/services/oauth2/token", self.tokens.token, methods=["POST"])]
        api = [*token, *RestApi(self.ctx).routes(), *CompositeApi(self.ctx).routes(),
               *CompositeRequestApi(self.ctx).routes(), *BulkQueryApi(self.ctx).routes()]

        async def unmatched(request: Request) -> Response:
            """404 NOT_FOUND / 405 METHOD_NOT_ALLOWED in Salesforce's list shape instead of plain text."""
            allowed = sorted({m for r in api if isinstance(r, Route) and r.matches(request.scope)[0] == Match.PARTIAL
                              for m in (r.methods or ()) if m != "HEAD"})
            if allowed:
                return SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. "
                                       f"Allowed are {','.join(allowed)}").response()
            return errors.not_found().response()

        methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
        return [*api, Route("/services/{rest:path}", unmatched, methods=methods)]

    # -- a person in Salesforce's UI, and the org's settings ----------------------------------------
    def ui_routes(self) -> list[BaseRoute]:
        base = f"{ADMIN_PREFIX}/ui/{{sobject}}"
        return [
            Route(base, self._ui_create, methods=["POST"]),
            Route(base + "/{record_id}", self._ui_update, methods=["PATCH"]),
            Route(base + "/{record_id}", self._ui_delete, methods=["DELETE"]),
            Route(base + "/{record_id}/convert", self._ui_convert, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/oauth/expire", self._expire_tokens, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/settings", self._get_settings, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/settings", self._put_settings, methods=["PUT"]),
        ]

    async def _ui(self, request: Request, action: Callable[[Org, Any, dict[str, Any]], Response]) -> Response:
        assert self.ctx is not None
        try:
            at = clock.parse_at(request.query_params.get("at"))  # an edit made at a given time (clock.py)
        except clock.EditTimeError as err:
            return SalesforceError(400, "INVALID_FIELD", str(err), []).response()
        try:
            body = orjson.loads(await request.body() or b"{}")
            with clock.stamped_at(at):
                return action(self.ctx.org, sobject_or_404(request.path_params["sobject"]), body)
        except clock.EditTimeError as err:
            return SalesforceError(400, "INVALID_FIELD", str(err), []).response()
        except SalesforceError as err:
            return err.response()

    async def _ui_create(self, request: Request) -> Response:
        def act(org: Org, o: Any, body: dict[str, Any]) -> Response:
            record_id = org.create(o, body)
            return errors.json_response(record_body(o, org.get_live(o, record_id), LATEST,
                                                   picklists=org.state_country_picklists), 201)

        return await self._ui(request, act)

    async def _ui_update(self, request: Request) -> Response:
        def act(org: Org, o: Any, body: dict[str, Any]) -> Response:
            record_id = request.path_params["record_id"]
            owner = org.get_live(o, record_id).get("OwnerId")  # the record's owner makes the edit
            org.update(o, record_id, body, owner)
            return errors.json_response(record_body(o, org.get_live(o, record_id), LATEST,
                                                    picklists=org.state_country_picklists))

        return await self._ui(request, act)

    async def _ui_convert(self, request: Request) -> Response:
        """A Lead converted into an existing Contact (``{"contactId": …, "accountId": …}``), as from the UI."""
        def act(org: Org, o: Any, body: dict[str, Any]) -> Response:
            if o.name != "Lead":
                return errors.json_response([{"errorCode": "NOT_FOUND", "message": "only Leads convert"}], 404)
            record_id = request.path_params["record_id"]
            org.convert_lead(o, record_id, body["contactId"], body.get("accountId"))
            return errors.json_response(record_body(o, org.get_live(o, record_id), LATEST,
                                                    picklists=org.state_country_picklists))

        return await self._ui(request, act)

    async def _ui_delete(self, request: Request) -> Response:
        def act(org: Org, o: Any, body: dict[str, Any]) -> Response:
            org.delete(o, request.path_params["record_id"])
            return Response(status_code=204)

        return await self._ui(request, act)

    async def _expire_tokens(self, request: Request) -> Response:
        """Let every session end now, as if the org's session timeout had passed."""
        assert self.store is not None
        return errors.json_response({"expired": self.store.expire_access_tokens(int(time.time() * 1000) - 1000)})

    async def _get_settings(self, request: Request) -> Response:
        assert self.ctx is not None
        return errors.json_response({"state_country_picklists": self.ctx.org.state_country_picklists,
                                     "bulk_query_seconds": self.ctx.bulk_query_seconds})

    async def _put_settings(self, request: Request) -> Response:
        """Org settings: ``{"state_country_picklists": true}`` turns on state and country picklists;
        ``{"bulk_query_seconds": 5}`` makes Bulk API 2.0 query jobs take that long (not persisted)."""
        assert self.ctx is not None and self.store is not None
        body = orjson.loads(await request.body() or b"{}")
        unknown = set(body) - {"state_country_picklists", "bulk_query_seconds"}
        if unknown:
            return errors.json_response({"error": f"unknown settings {sorted(unknown)}"}, 400)
        if "bulk_query_seconds" in body:
            try:
                self.apply_settings({"bulk_query_seconds": body["bulk_query_seconds"]})
            except (TypeError, ValueError) as e:
                return errors.json_response({"error": str(e)}, 400)
        if "state_country_picklists" in body:
            self.ctx.org.state_country_picklists = bool(body["state_country_picklists"])
            self.store.set_meta("settings", {"state_country_picklists": self.ctx.org.state_country_picklists})
        return await self._get_settings(request)


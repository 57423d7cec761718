"""The Web API surface under ``/api/data/v9.2``: routing OData paths to readers, writers and metadata.

Starlette routes exist per URL template so usage is metered per endpoint; they all land in one
``endpoint`` that authenticates, applies service protection and then ``dispatch``es a transport-neutral
:class:`ApiRequest` - the same dispatcher ``$batch`` uses for each of its parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crm_pipelines.sandbox.dynamics import batch, close, errors
from crm_pipelines.sandbox.dynamics.auth import authenticate, token_endpoint
from crm_pipelines.sandbox.dynamics.catalog import API_PATH, BY_SET, TABLES, Table
from crm_pipelines.sandbox.dynamics.limits import ServiceProtection
from crm_pipelines.sandbox.dynamics.messages import ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.metadata import Metadata
from crm_pipelines.sandbox.dynamics.odata import parse_prefer, parse_select, split_top_level
from crm_pipelines.sandbox.dynamics.query import Reader
from crm_pipelines.sandbox.dynamics.records import Writer, parse_key
from crm_pipelines.sandbox.dynamics.render import Renderer
from crm_pipelines.sandbox.dynamics.store import DynamicsStore

_ACTIONS = {"Microsoft.Dynamics.CRM.CreateMultiple", "Microsoft.Dynamics.CRM.UpdateMultiple",
            "Microsoft.Dynamics.CRM.UpsertMultiple"}
# URL templates, one Starlette route each (usage is counted per template).
_TEMPLATES = [
    ("/", ["GET"]),
    ("/$metadata", ["GET"]),
    ("/$batch", ["POST"]),
    ("/WhoAmI", ["GET"]),
    ("/WhoAmI()", ["GET"]),
    ("/BulkDelete", ["POST"]),
    ("/WinOpportunity", ["POST"]),
    ("/LoseOpportunity", ["POST"]),
    ("/EntityDefinitions", ["GET"]),
    ("/EntityDefinitions({key})", ["GET"]),
    ("/EntityDefinitions({key})/{member}", ["GET"]),
    ("/EntityDefinitions({key})/{member}/{cast}", ["GET"]),
    ("/{entity_set}({key})/{property}", ["GET", "PUT", "DELETE"]),
    ("/{entity_set}({key})", ["GET", "PATCH", "DELETE"]),
    ("/{entity_set}/{action}", ["GET", "POST"]),
    ("/{entity_set}", ["GET", "POST"]),
]


class Organization:
    """What the handlers share: the store, the public URLs, limits and the default owner of new rows."""

    def __init__(self, store: DynamicsStore, limits: ServiceProtection) -> None:
        self.store = store
        self.limits = limits
        self.base_url = ""

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PATH}"

    def default_owner(self) -> str | None:
        return (self.store.get_meta("app_user") or {}).get("systemuserid")


class WebApi:
    def __init__(self, org: Organization) -> None:
        self.org = org

    # -- objects built per call, so a changed base URL is picked up ------------------------------------
    def reader(self) -> Reader:
        return Reader(self.org.store, self.org.api_url)

    def writer(self) -> Writer:
        return Writer(self.org.store, self.org.api_url, self.org.default_owner, self._representation)

    def _representation(self, table: Table, row: dict[str, Any], req: ApiRequest) -> dict[str, Any]:
        select = parse_select(table, req.query.get("$select"))
        reader = self.reader()
        return {"@odata.context": reader.context(table, select, "/$entity"),
                **Renderer(self.org.store, table, select, parse_prefer(req.header("prefer"))).rows([row])[0]}

    # -- routing ----------------------------------------------------------------------------------------
    def routes(self, token_route: str = "/{tenant}/oauth2/v2.0/token") -> list[BaseRoute]:
        api = [Route(API_PATH + path, self.endpoint, methods=methods) for path, methods in _TEMPLATES]
        return [Route(token_route, self.token, methods=["POST"]), *api,
                Route(API_PATH + "/{rest:path}", self.endpoint, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]

    async def token(self, request: Request) -> Response:
        return await token_endpoint(request, self.org.store, self.org.base_url)

    async def endpoint(self, request: Request) -> Response:
        user, denied = authenticate(self.org.store, request, self.org.base_url)
        if denied is not None:
            return denied
        assert user is not None
        try:
            limit_headers = self.org.limits.enter(user)
        except errors.DataverseError as err:
            return ApiResponse.of_error(err).to_starlette()
        started = time.perf_counter()
        try:
            path = request.scope["path"].split(API_PATH, 1)[1].lstrip("/")
            req = ApiRequest(request.method, path, dict(request.query_params),
                             {k.lower(): v for k, v in request.headers.items()}, await request.body(),
                             request.url.query)
            response = self._batch(req) if path == "$batch" and request.method == "POST" else self.dispatch(req)
        finally:
            self.org.limits.leave(user, (time.perf_counter() - started) * 1000)
        response.headers.update(limit_headers)
        return response.to_starlette()

    def _batch(self, req: ApiRequest) -> ApiResponse:
        try:
            items = batch.parse(req.body, req.header("content-type") or "")
        except errors.DataverseError as err:
            return ApiResponse.of_error(err)
        return batch.execute(self.org.store, items, req.header("prefer"), self.dispatch)

    def dispatch(self, req: ApiRequest) -> ApiResponse:
        try:
            return self._route(req)
        except errors.DataverseError as err:
            return ApiResponse.of_error(err)

    def _route(self, req: ApiRequest) -> ApiResponse:
        segments = split_top_level(req.path, "/") if req.path else []
        method = req.method
        if not segments:
            return self._service_document()
        head, rest = segments[0], segments[1:]
        if head == "$metadata":
            return self._csdl()
        if head in ("WhoAmI", "WhoAmI()") and method == "GET":
            return self._who_am_i()
        if head == "BulkDelete" and method == "POST":
            return self.writer().bulk_delete(req)
        if head in close.ACTIONS and method == "POST" and not rest:
            return close.close_opportunity(self.writer(), head, req)
        name, paren, key = head.partition("(")
        key = key[:-1] if paren and key.endswith(")") else key
        if name == "EntityDefinitions" and method == "GET":
            return Metadata(self.org.api_url).handle(req, key if paren else None, rest)
        table = BY_SET.get(name)
        if table is None:
            raise errors.segment_not_found(name)
        if not paren:
            if not rest:
                if method == "GET":
                    return self.reader().list(table, req)
                if method == "POST":
                    return self.writer().create(table, req)
            elif rest == ["$count"] and method == "GET":
                return ApiResponse(200, raw=str(self._count(table)).encode(), content_type="text/plain")
            elif len(rest) == 1 and rest[0] in _ACTIONS and method == "POST":
                action = rest[0].rsplit(".", 1)[1]
                handler = {"CreateMultiple": self.writer().create_multiple,
                           "UpdateMultiple": self.writer().update_multiple,
                           "UpsertMultiple": self.writer().upsert_multiple}[action]
                return handler(table, req)
            elif len(rest) == 1 and method == "POST":
                raise errors.segment_not_found(rest[0])
            raise _not_allowed(method)
        parsed = parse_key(table, key)
        if not rest:
            if method == "GET":
                if parsed.record_id is None:
                    row = self.writer().find(table, parsed)
                    if row is None:
                        raise errors.not_found(table.logical_name, parsed.describe())
                    return self.reader().retrieve(table, row[table.primary_id], req)
                return self.reader().retrieve(table, parsed.record_id, req)
            if method == "PATCH":
                return self.writer().patch(table, parsed, req)
            if method == "DELETE":
                return self.writer().delete(table, parsed, req)
            raise _not_allowed(method)
        if len(rest) == 1 and rest[0] in table.by_name and method in ("PUT", "DELETE"):
            return self.writer().put_property(table, parsed, rest[0], req, clear=method == "DELETE")
        if len(rest) == 1 and rest[0] in table.by_column and method == "GET":
            row = self.writer().find(table, parsed)
            if row is None:
                raise errors.not_found(table.logical_name, parsed.describe())
            return ApiResponse(200, {"@odata.context": f"{self.org.api_url}/$metadata#{table.entity_set}"
                                                       f"({row[table.primary_id]})/{rest[0]}", "value": row[rest[0]]})
        raise errors.segment_not_found(rest[0])

    def _count(self, table: Table) -> int:
        return self.org.store.db.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {table.entity_set} LIMIT 5001)").fetchone()[0]

    def _service_document(self) -> ApiResponse:
        return ApiResponse(200, {"@odata.context": f"{self.org.api_url}/$metadata",
                                 "value": [{"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set}
                                           for t in TABLES]})

    def _who_am_i(self) -> ApiResponse:
        app_user = self.org.store.get_meta("app_user") or {}
        return ApiResponse(200, {
            "@odata.context": f"{self.org.api_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": app_user.get("businessunitid"), "UserId": app_user.get("systemuserid"),
            "OrganizationId": app_user.get("organizationid"),
        })

    def _csdl(self) -> ApiResponse:
        from crm_pipelines.sandbox.dynamics.csdl import csdl

        return ApiResponse(200, raw=csdl().encode(), content_type="application/xml")


def _not_allowed(method: str) -> errors.DataverseError:
    return errors.DataverseError(405, "0x80060888", f"The HTTP method '{method}' is not allowed on this resource.")


Handler = Callable[[Request], Response]

"""What every REST handler shares: the org, its query engine, the usage counter, and the call wrapper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.auth import authenticate
from crm_pipelines.sandbox.salesforce.catalog import API_VERSIONS
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.limits import ApiUsage
from crm_pipelines.sandbox.salesforce.query import QueryEngine
from crm_pipelines.sandbox.salesforce.records import Org
from crm_pipelines.sandbox.salesforce.store import SalesforceStore

Handler = Callable[["Call"], Awaitable[Any]]
DATA = "/services/data/v{version}"


@dataclass
class Context:
    store: SalesforceStore
    org: Org
    engine: QueryEngine
    usage: ApiUsage
    base_url: str = ""
    bulk_query_seconds: float = 0.0  # how long a Bulk API 2.0 query job runs before JobComplete


@dataclass
class Call:
    """One authenticated REST call: the request, its API version and the acting User."""

    request: Request
    version: str
    user_id: str

    @property
    def params(self) -> dict[str, str]:
        return self.request.path_params

    async def json(self) -> Any:
        raw = await self.request.body()
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as e:
            raise errors.json_parser_error(str(e)) from None


def endpoint(ctx: Context, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Version check, session check, the daily allocation, errors as lists, Sforce-Limit-Info on every answer."""

    async def handle(request: Request) -> Response:
        try:
            version = request.path_params.get("version", "")
            if version not in API_VERSIONS:
                raise errors.not_found()
            user_id = authenticate(ctx.store, request)
            if not ctx.usage.acquire():
                raise errors.request_limit_exceeded()
            result = await fn(Call(request, version, user_id))
            response = result if isinstance(result, Response) else errors.json_response(result)
        except SalesforceError as err:
            response = err.response()
        response.headers["Sforce-Limit-Info"] = ctx.usage.header()
        return response

    return handle


def routes(ctx: Context, table: list[tuple[str, str, Handler]]) -> list[Route]:
    """Each path with and without its trailing slash (simple-salesforce adds one to most calls)."""
    out = []
    for method, path, fn in table:
        handle = endpoint(ctx, fn)
        out.append(Route(path, handle, methods=[method]))
        out.append(Route(path + "/", handle, methods=[method]))
    return out

"""The Composite resource, ``POST /services/data/vXX.X/composite``: several REST reads in one call (issue 14).

Facts relied on (``shared/specs/salesforce/FACTS.md`` has no section on this resource):

- "Executes a series of REST API requests in a single call. [...] The entire series of requests counts as a
  single call toward your API limits." Up to 25 subrequests, of which up to 5 may be sObject Collections or
  query operations (Query, QueryAll, and "query more" requests for the next batch of a result).
  Supported subrequests: the sObject resources, Query (``/services/data/vXX.X/query/?q=soql``), QueryAll.
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html ;
  https://developer.salesforce.com/docs/atlas.ja-jp.210.0.api_rest.meta/api_rest/resources_composite_composite.htm
- Request body ``{"allOrNone": bool, "collateSubrequests": bool, "compositeRequest": [{"method", "url",
  "referenceId", "httpHeaders"?, "body"?}]}``; whatever happens to the subrequests, the top-level request
  answers 200 with a result for each.
  https://developer.salesforce.com/docs/atlas.en-us.240.0.api_rest.meta/api/requests_composite.htm
- Response ``{"compositeResponse": [{"body", "httpHeaders", "httpStatusCode", "referenceId"}]}`` in request
  order; a failed subrequest's body is the usual error list (``[{"message", "errorCode", "fields"?}]``);
  with ``allOrNone`` true, when one subrequest fails every other one answers 400.
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_subrequest_result.htm
- ``postman/composite/composite.json`` (shared specs): the resource's URL, with its trailing slash.

Not confirmed by a source (kept plausible, to be checked against a real org):

- the exact error of a request over the subrequest limits: answered here as a top-level 400 ``LIMIT_EXCEEDED``
  (see ``_over_limit``); the documentation states the limits but no error text could be found;
- the body of the subrequests ``allOrNone`` turns into failures: ``PROCESSING_HALTED`` "The transaction was
  rolled back since another operation in the same transaction failed." (as recalled from the documentation's
  allOrNone examples, not re-read).

What the sandbox serves: GET subrequests on query/queryAll (and their "query more" locators) and on the
sObject read resources, run by the very handlers of ``rest_api.RestApi`` (no second SOQL path). Write
subrequests (POST/PATCH/PUT/DELETE) and ``@{referenceId.field}`` references are not emulated: a write
answers the subrequest with 405 ``METHOD_NOT_ALLOWED``, and a reference is left in the URL as written. A URL
that names no resource answers 404 ``NOT_FOUND``, as the top-level router does. The composite call passes the
session check and the daily allocation once (``context.endpoint``), and the fault middleware counts it once
in ``/__sandbox__/usage``: subrequests are run in-process and counted nowhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.catalog import API_VERSIONS
from crm_pipelines.sandbox.salesforce.context import DATA, Call, Context, routes
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.rest_api import RestApi

MAX_SUBREQUESTS = 25
MAX_QUERY_SUBREQUESTS = 5  # query, queryAll, query more, and sObject Collections subrequests together
PROCESSING_HALTED = SalesforceError(
    400, "PROCESSING_HALTED", "The transaction was rolled back since another operation in the same transaction failed."
)

SubHandler = Callable[[Call], Awaitable[Any]]


def _over_limit(kind: str, limit: int, count: int) -> SalesforceError:
    # Unconfirmed text (see the module's docstring): the documented limit, and how far over it the request is.
    return SalesforceError(400, "LIMIT_EXCEEDED",
                           f"A composite request can contain up to {limit} {kind}; this one contains {count}.")


def _error_body(err: SalesforceError) -> Any:
    return orjson.loads(err.response().body)  # the same list (or 300 URL list) the resource itself answers


class CompositeRequestApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        rest = RestApi(ctx)
        s = DATA + "/sobjects/{sobject}"
        # (path, handler, counts toward the five query subrequests), in the order RestApi routes them.
        table: list[tuple[str, SubHandler | None, bool]] = [
            (DATA + "/limits", rest.limits, False),
            (DATA + "/sobjects", rest.global_describe, False),
            (s, rest.sobject_info, False),
            (s + "/describe", rest.describe, False),
            (s + "/updated", rest.updated, False),
            (s + "/deleted", rest.deleted, False),
            (s + "/{record_id}", rest.get, False),
            (s + "/{field}/{value}", rest.get_by_external_id, False),
            (DATA + "/query", rest.query, True),
            (DATA + "/queryAll", rest.query_all, True),
            (DATA + "/query/{locator}", rest.query_more, True),
            (DATA + "/queryAll/{locator}", rest.query_all_more, True),
            # sObject Collections count toward the five as well; the sandbox does not run them as subrequests.
            (DATA + "/composite/sobjects", None, True),
            (DATA + "/composite/sobjects/{rest:path}", None, True),
        ]
        self._table = [(Route(p + tail, _never, methods=["GET"]), fn, q) for p, fn, q in table for tail in ("", "/")]

    def routes(self) -> list[BaseRoute]:
        return routes(self.ctx, [("POST", DATA + "/composite", self.composite)])

    async def composite(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        subrequests = self._subrequests(body)
        all_or_none = bool(body.get("allOrNone", False))
        matched = [self._match(s) for s in subrequests]
        if len(subrequests) > MAX_SUBREQUESTS:
            raise _over_limit("subrequests", MAX_SUBREQUESTS, len(subrequests))
        queries = sum(1 for m in matched if m is not None and m[2])
        if queries > MAX_QUERY_SUBREQUESTS:
            raise _over_limit("query or sObject Collections subrequests", MAX_QUERY_SUBREQUESTS, queries)
        results: list[dict[str, Any]] = []
        failed = False
        for sub, match in zip(subrequests, matched, strict=True):
            if failed and all_or_none:
                status, answer = PROCESSING_HALTED.status, _error_body(PROCESSING_HALTED)
            else:
                status, answer = await self._run(call, sub, match)
            failed = failed or status >= 400
            results.append({"body": answer, "httpHeaders": {}, "httpStatusCode": status,
                            "referenceId": sub["referenceId"]})
        if failed and all_or_none:  # every other subrequest is rolled back and reports it
            halted = _error_body(PROCESSING_HALTED)
            for r in results:
                if r["httpStatusCode"] < 400:
                    r["body"], r["httpStatusCode"] = halted, PROCESSING_HALTED.status
        return {"compositeResponse": results}

    @staticmethod
    def _subrequests(body: Any) -> list[dict[str, Any]]:
        """The subrequests of a well-formed body; anything else is the JSON parser's error, as elsewhere."""
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise errors.json_parser_error('expected {"allOrNone": bool, "compositeRequest": [...]}')
        out = body["compositeRequest"]
        for sub in out:
            if not isinstance(sub, dict) or not all(isinstance(sub.get(k), str) and sub[k]
                                                    for k in ("method", "url", "referenceId")):
                raise errors.json_parser_error("each subrequest must be an object with method, url and referenceId")
            if not isinstance(sub.get("httpHeaders", {}), dict):
                raise errors.json_parser_error("httpHeaders must be an object")
        return out

    def _scope(self, call: Call, sub: dict[str, Any]) -> dict[str, Any]:
        url = urlsplit(sub["url"])
        headers = [(str(k).lower().encode("latin-1"), str(v).encode("latin-1"))
                   for k, v in (sub.get("httpHeaders") or {}).items()]
        outer = call.request.scope
        return {"type": "http", "http_version": "1.1", "method": sub["method"].upper(), "scheme": outer.get("scheme"),
                "server": outer.get("server"), "client": outer.get("client"), "root_path": "",
                "path": url.path, "raw_path": url.path.encode(), "query_string": url.query.encode(),
                "headers": headers}

    def _match(self, sub: dict[str, Any]) -> tuple[Route, SubHandler | None, bool] | None:
        """The read resource a subrequest's URL names (whatever its method), or None."""
        scope = {"type": "http", "method": "GET", "path": urlsplit(sub["url"]).path, "root_path": ""}
        for route, fn, is_query in self._table:
            if route.matches(scope)[0] == Match.FULL:
                return route, fn, is_query
        return None

    async def _run(self, call: Call, sub: dict[str, Any],
                   match: tuple[Route, SubHandler | None, bool] | None) -> tuple[int, Any]:
        scope = self._scope(call, sub)
        try:
            if match is None:
                raise errors.not_found()
            route, fn, _ = match
            if scope["method"] != "GET" or fn is None:
                raise SalesforceError(405, "METHOD_NOT_ALLOWED",
                                      f"HTTP Method '{scope['method']}' not allowed in this sandbox's composite "
                                      "subrequests. Allowed are GET")
            _, child = route.matches(scope)
            request = Request({**scope, **child})
            version = request.path_params.get("version", "")
            if version not in API_VERSIONS:
                raise errors.not_found()
            result = await fn(Call(request, version, call.user_id))
        except SalesforceError as err:
            return err.status, _error_body(err)
        if isinstance(result, Response):
            return result.status_code, orjson.loads(result.body) if result.body else None
        return 200, result


async def _never(request: Request) -> Response:  # pragma: no cover - routes here only match, never serve
    raise AssertionError("composite subrequest routes are matched, not served")

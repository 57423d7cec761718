"""HTTP handlers for CRM v3 objects, batch and search, as served at ``api.hubapi.com``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.catalog import (
    BATCH_HISTORY_MAX_INPUTS,
    BATCH_MAX_INPUTS,
    LIST_PAGE_MAX,
    ObjectType,
    object_type,
)
from crm_pipelines.sandbox.hubspot.limits import Limits, authenticate
from crm_pipelines.sandbox.hubspot.portal import Portal
from crm_pipelines.sandbox.hubspot.search import plan_search
from crm_pipelines.sandbox.hubspot.store import RECORD_COLUMNS, Record
from crm_pipelines.sandbox.hubspot.values import iso_ms

Handler = Callable[[Request], Awaitable[Response]]


class Context:
    """What every handler needs: the portal, the limits, and the public base URL for paging links."""

    def __init__(self, portal: Portal, limits: Limits) -> None:
        self.portal = portal
        self.limits = limits
        self.base_url = ""


def endpoint(ctx: Context, handler: Handler, *, search: bool = False, auth: bool = True) -> Handler:
    """Auth, rate limits, error bodies and the correlation id header, the same on every endpoint."""

    async def wrapped(request: Request) -> Response:
        cid = errors.correlation_id()
        headers: dict[str, str] = {}
        try:
            if auth:
                app, is_oauth = authenticate(ctx.portal.store, request)
                throttled, headers = ctx.limits.check(app, search, is_oauth, cid)
                if throttled is not None:
                    return throttled
            response = await handler(request)
        except errors.HubSpotError as err:
            response = err.response(cid)
        response.headers[errors.CORRELATION_HEADER] = cid
        for k, v in headers.items():
            response.headers[k] = v
        return response

    return wrapped


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as e:
        raise errors.validation(f"Invalid input JSON on line 1, column {e.colno}: {e.msg}") from None


def resolve(request: Request, key: str = "object_type") -> ObjectType:
    o = object_type(request.path_params[key])
    if o is None:
        raise errors.HubSpotError(
            400, "VALIDATION_ERROR", f"Unable to infer object type from: {request.path_params[key]}"
        )
    return o


def csv_param(request: Request, name: str) -> list[str] | None:
    """``properties=a,b`` and ``properties=a&properties=b`` both mean [a, b]."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def now_iso() -> str:
    return iso_ms(int(time.time() * 1000))


def batch_body(results: list[dict], started: str, errs: list[dict] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now_iso()}
    if errs:
        body["numErrors"] = len(errs)
        body["errors"] = errs
    return body


def inputs_of(body: Any, cap: int = BATCH_MAX_INPUTS) -> list[dict]:
    inputs = body.get("inputs") if isinstance(body, Mapping) else None
    if not isinstance(inputs, list):
        raise errors.validation("Invalid input JSON: inputs must be a list")
    if len(inputs) > cap:
        raise errors.validation(f"Batch input limit exceeded: {len(inputs)} inputs were sent; the maximum is {cap}.")
    return inputs


class ObjectsApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.portal = ctx.portal

    def routes(self) -> list[Route]:
        e = lambda h, **kw: endpoint(self.ctx, h, **kw)  # noqa: E731
        base = "/crm/v3/objects/{object_type}"
        return [
            Route(base, e(self.list), methods=["GET"]),
            Route(base, e(self.create), methods=["POST"]),
            Route(base + "/search", e(self.search, search=True), methods=["POST"]),
            Route(base + "/batch/read", e(self.batch_read), methods=["POST"]),
            Route(base + "/batch/create", e(self.batch_create), methods=["POST"]),
            Route(base + "/batch/update", e(self.batch_update), methods=["POST"]),
            Route(base + "/batch/upsert", e(self.batch_upsert), methods=["POST"]),
            Route(base + "/batch/archive", e(self.batch_archive), methods=["POST"]),
            Route(base + "/{object_id}", e(self.get), methods=["GET"]),
            Route(base + "/{object_id}", e(self.update), methods=["PATCH"]),
            Route(base + "/{object_id}", e(self.archive), methods=["DELETE"]),
        ]

    # -- single records -----------------------------------------------------------------------------
    async def list(self, request: Request) -> Response:
        o = resolve(request)
        history = csv_param(request, "propertiesWithHistory")
        try:
            limit = int(request.query_params.get("limit", 10))
            after = int(request.query_params.get("after") or 0)
        except ValueError:
            raise errors.validation("limit and after must be integers") from None
        cap = BATCH_HISTORY_MAX_INPUTS if history else LIST_PAGE_MAX
        if not 1 <= limit <= cap:
            raise errors.validation(f"limit must be between 1 and {cap}, got {limit}")
        archived = flag(request, "archived")
        records = self.portal.store.page(
            o.name, after, limit + 1, archived=archived, archived_since_ms=self.portal.retention_cutoff_ms()
        )
        names = csv_param(request, "properties")
        assoc = csv_param(request, "associations")
        defs = self.portal.properties(o.name)
        linked = self.portal.linked_for_page(o.name, [r.id for r in records[:limit]], assoc) if assoc else None
        body: dict[str, Any] = {
            "results": [
                self.portal.render(r, names, history=history, associations=assoc, defs=defs, linked=linked)
                for r in records[:limit]
            ]
        }
        if len(records) > limit:
            cursor = str(records[limit - 1].id)
            body["paging"] = {
                "next": {"after": cursor, "link": f"{self.ctx.base_url}{request.url.path}?after={cursor}"}
            }
        return errors.json_response(body)

    def _find_or_404(self, request: Request, o: ObjectType, *, archived: bool = False) -> Record:
        key = request.path_params["object_id"]
        record = self.portal.find(o, key, request.query_params.get("idProperty"), archived=archived)
        if record is None:
            raise errors.not_found(key)
        return record

    async def get(self, request: Request) -> Response:
        o = resolve(request)
        record = self._find_or_404(request, o, archived=flag(request, "archived"))
        return errors.json_response(
            self.portal.render(
                record,
                csv_param(request, "properties"),
                history=csv_param(request, "propertiesWithHistory"),
                associations=csv_param(request, "associations"),
            )
        )

    async def create(self, request: Request) -> Response:
        o = resolve(request)
        body = await json_body(request)
        record = self.portal.create(o, body.get("properties") or {}, associations=body.get("associations") or [])
        return errors.json_response(self.portal.render(record, list(record.properties) or None), 201)

    async def update(self, request: Request) -> Response:
        o = resolve(request)
        record = self._find_or_404(request, o)
        body = await json_body(request)
        updated = self.portal.update(o, record, body.get("properties") or {})
        return errors.json_response(self.portal.render(updated, list(updated.properties)))

    async def archive(self, request: Request) -> Response:
        o = resolve(request)
        key = request.path_params["object_id"]
        record = self.portal.find(o, key, request.query_params.get("idProperty"))
        if record is not None:
            self.portal.archive(record)
        return Response(status_code=204)

    # -- search -------------------------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        o = resolve(request)
        defs = self.portal.properties(o.name)
        plan = plan_search(o, await json_body(request), defs)
        store = self.portal.store
        total = store.scalar(f"SELECT COUNT(*) FROM objects o WHERE {plan.where}", plan.params)
        rows = store.query(
            f"SELECT {', '.join('o.' + c.strip() for c in RECORD_COLUMNS.split(','))} FROM objects o "
            f"WHERE {plan.where} ORDER BY {plan.order_by} LIMIT ? OFFSET ?",
            [*plan.params, plan.limit, plan.offset],
        )
        body: dict[str, Any] = {
            "total": total,
            "results": [self.portal.render(r, plan.properties, defs=defs) for r in rows],
        }
        if plan.offset + len(rows) < total and plan.limit:
            body["paging"] = {"next": {"after": str(plan.offset + plan.limit)}}
        return errors.json_response(body)

    # -- batch --------------------------------------------------------------------------------------
    async def batch_read(self, request: Request) -> Response:
        o = resolve(request)
        body = await json_body(request)
        history = body.get("propertiesWithHistory") or None
        inputs = inputs_of(body, BATCH_HISTORY_MAX_INPUTS if history else BATCH_MAX_INPUTS)
        started = now_iso()
        id_property = body.get("idProperty")
        archived = flag(request, "archived")
        found, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            record = self.portal.find(o, key, id_property, archived=archived)
            if record is None:
                missing.append(key)
            else:
                found.append(self.portal.render(record, body.get("properties") or None, history=history))
        if not missing:
            return errors.json_response(batch_body(found, started))
        err = errors.HubSpotError(
            404,
            "OBJECT_NOT_FOUND",
            f"Could not get some {o.singular.upper()} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            context={"ids": missing},
        )
        return errors.json_response(batch_body(found, started, [err.as_batch_error()]), 207)

    @staticmethod
    def _multi_status(inputs: list[dict]) -> bool:
        """Partial success is only reported when every input carries a unique objectWriteTraceId (§3)."""
        ids = [i.get("objectWriteTraceId") for i in inputs]
        return all(ids) and len(set(ids)) == len(ids)

    def _run_batch(
        self, inputs: list[dict], write: Callable[[dict], tuple[Record, dict[str, Any]]], status: int
    ) -> Response:
        started = now_iso()
        if self._multi_status(inputs):
            results, errs = [], []
            for item in inputs:
                try:
                    with self.portal.store.transaction():
                        record, extra = write(item)
                except errors.HubSpotError as err:
                    err.context = {**(err.context or {}), "objectWriteTraceId": [item["objectWriteTraceId"]]}
                    errs.append(err.as_batch_error())
                    continue
                results.append(self._render_written(record, extra, item))
            return errors.json_response(batch_body(results, started, errs), 207 if errs else status)
        # Without trace ids one bad input fails the whole batch, and nothing of it is written.
        with self.portal.store.transaction():
            written = [(write(item), item) for item in inputs]
        results = [self._render_written(record, extra, item) for (record, extra), item in written]
        return errors.json_response(batch_body(results, started), status)

    def _render_written(self, record: Record, extra: dict[str, Any], item: dict) -> dict[str, Any]:
        rendered = {**self.portal.render(record, list(record.properties) or None), **extra}
        if item.get("objectWriteTraceId"):
            rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
        return rendered

    async def batch_create(self, request: Request) -> Response:
        o = resolve(request)
        inputs = inputs_of(await json_body(request))

        def write(item: dict) -> tuple[Record, dict]:
            return self.portal.create(o, item.get("properties") or {}, associations=item.get("associations") or []), {}

        return self._run_batch(inputs, write, 201)

    async def batch_update(self, request: Request) -> Response:
        o = resolve(request)
        inputs = inputs_of(await json_body(request))

        def write(item: dict) -> tuple[Record, dict]:
            key = str(item.get("id", ""))
            record = self.portal.find(o, key, item.get("idProperty"))
            if record is None:
                raise errors.not_found(key)
            return self.portal.update(o, record, item.get("properties") or {}), {}

        return self._run_batch(inputs, write, 200)

    async def batch_upsert(self, request: Request) -> Response:
        o = resolve(request)
        inputs = inputs_of(await json_body(request))

        def write(item: dict) -> tuple[Record, dict]:
            key, id_property = str(item.get("id", "")), item.get("idProperty")
            if not key or not id_property:
                raise errors.validation("Each upsert input needs id and idProperty")
            props = dict(item.get("properties") or {})
            record = self.portal.find(o, key, id_property)
            if record is not None:
                return self.portal.update(o, record, props), {"new": False}
            props.setdefault(id_property, key)
            return self.portal.create(o, props), {"new": True}

        return self._run_batch(inputs, write, 200)

    async def batch_archive(self, request: Request) -> Response:
        o = resolve(request)
        inputs = inputs_of(await json_body(request))
        with self.portal.store.transaction():
            for item in inputs:
                record = self.portal.find(o, str(item.get("id", "")), None)
                if record is not None:
                    self.portal.archive(record)
        return Response(status_code=204)


def unmatched_route(ctx: Context, api: list[BaseRoute]) -> Route:
    """Every path no endpoint serves: HubSpot's JSON error body, never the framework's plain-text 404.

    A path served for other methods answers 405 (FACTS §5: the body text of both is unverified).
    """

    async def unmatched(request: Request) -> Response:
        allowed = sorted(
            {
                m
                for r in api
                if isinstance(r, Route) and r.matches(request.scope)[0] == Match.PARTIAL
                for m in (r.methods or ())
                if m != "HEAD"
            }
        )
        if allowed:
            raise errors.HubSpotError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP method {request.method} is not supported by this resource; allowed: {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise errors.HubSpotError(404, "OBJECT_NOT_FOUND", f"Resource not found: {request.url.path}")

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
    return Route("/{path:path}", endpoint(ctx, unmatched, auth=False), methods=methods)

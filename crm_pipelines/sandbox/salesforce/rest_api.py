"""The REST resources of ``/services/data/vXX.X``: versions, sObjects (describe, CRUD, upsert, replication),
query and queryAll, limits (FACTS §1, §5, §7, §8, §11)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.catalog import API_VERSIONS, QUERY_BATCH, VERSION_LABELS
from crm_pipelines.sandbox.salesforce.compound import address_value
from crm_pipelines.sandbox.salesforce.context import DATA, Call, Context, routes
from crm_pipelines.sandbox.salesforce.describe import describe, describe_global, object_summary
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.records import sobject_or_404
from crm_pipelines.sandbox.salesforce.store import DELETED_AT
from crm_pipelines.sandbox.salesforce.values import parse_datetime, sf_datetime

UPDATED_DAYS, DELETED_DAYS = 30, 15  # how far back getUpdated / getDeleted reach (FACTS §7)
ID_LIMIT = 600_000


def record_body(o: Any, row: dict[str, Any], version: str, fields: list[str] | None = None, *,
                picklists: bool = False) -> dict[str, Any]:
    url = f"/services/data/v{version}/sobjects/{o.name}/{row['Id']}"
    body: dict[str, Any] = {"attributes": {"type": o.name, "url": url}}
    chosen = [o.lookup(n, picklists) for n in fields] if fields else o.visible(picklists)
    for f in chosen:
        if f is None:
            continue
        if f.compound:
            body[f.name] = address_value(f, row.get, picklists)
            continue
        value = row.get(f.name)
        body[f.name] = bool(value) if f.type == "boolean" and value is not None else value
    return body


def _fields_param(call: Call, o: Any, picklists: bool) -> list[str] | None:
    raw = call.request.query_params.get("fields")
    if not raw:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if o.lookup(n, picklists) is None]
    if unknown:
        raise SalesforceError(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{o.name}'. If you "
                              "are attempting to use a custom field, be sure to append the '__c' after the custom "
                              "field name. Please reference your WSDL or the describe call for the appropriate names.")
    return names


def batch_size(request: Request) -> int:
    """``Sforce-Query-Options: batchSize=N``: 200..2,000, default 2,000 (FACTS §5)."""
    option = request.headers.get("sforce-query-options", "")
    for part in option.split(","):
        key, _, value = part.strip().partition("=")
        if key.lower() == "batchsize" and value.isdigit():
            return max(200, min(QUERY_BATCH, int(value)))
    return QUERY_BATCH


def _minute(stamp: dt.datetime) -> dt.datetime:
    return stamp.replace(second=0, microsecond=0)


class RestApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        s = DATA + "/sobjects/{sobject}"
        table = [
            ("GET", DATA, self.resources),
            ("GET", DATA + "/limits", self.limits),
            ("GET", DATA + "/sobjects", self.global_describe),
            ("GET", s, self.sobject_info),
            ("POST", s, self.create),
            ("GET", s + "/describe", self.describe),
            ("GET", s + "/updated", self.updated),
            ("GET", s + "/deleted", self.deleted),
            ("GET", s + "/{record_id}", self.get),
            ("PATCH", s + "/{record_id}", self.update),
            ("DELETE", s + "/{record_id}", self.delete),
            ("GET", s + "/{field}/{value}", self.get_by_external_id),
            ("PATCH", s + "/{field}/{value}", self.upsert),
            ("GET", DATA + "/query", self.query),
            ("GET", DATA + "/queryAll", self.query_all),
            ("GET", DATA + "/query/{locator}", self.query_more),
            ("GET", DATA + "/queryAll/{locator}", self.query_all_more),
        ]
        versions = [Route("/services/data", self.versions, methods=["GET"]),
                    Route("/services/data/", self.versions, methods=["GET"])]
        return [*versions, *routes(self.ctx, table)]

    # -- discovery ----------------------------------------------------------------------------------
    async def versions(self, request: Request) -> Response:
        # The one resource that needs no session and carries no Sforce-Limit-Info (FACTS §4).
        return errors.json_response([
            {"label": VERSION_LABELS[v], "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS
        ])

    async def resources(self, call: Call) -> dict[str, str]:
        base = f"/services/data/v{call.version}"
        names = ["sobjects", "query", "queryAll", "limits", "composite", "jobs", "search", "recent"]
        return {n: f"{base}/{n}" for n in names}

    async def limits(self, call: Call) -> dict[str, Any]:
        usage = self.ctx.usage
        allocation = usage.allocation
        return {
            "DailyApiRequests": {"Max": allocation, "Remaining": max(0, allocation - usage.used())},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024},
        }

    async def global_describe(self, call: Call) -> dict[str, Any]:
        return describe_global(call.version)

    async def sobject_info(self, call: Call) -> dict[str, Any]:
        o = sobject_or_404(call.params["sobject"])
        return {"objectDescribe": object_summary(o, call.version), "recentItems": []}

    async def describe(self, call: Call) -> dict[str, Any]:
        return describe(sobject_or_404(call.params["sobject"]), call.version, self.ctx.org.state_country_picklists)

    # -- records ------------------------------------------------------------------------------------
    async def _body(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        if not isinstance(body, dict):
            raise errors.json_parser_error("expected a JSON object")
        return body

    async def create(self, call: Call) -> Response:
        o = sobject_or_404(call.params["sobject"])
        record_id = self.ctx.org.create(o, await self._body(call), call.user_id)
        return errors.json_response({"id": record_id, "success": True, "errors": []}, 201)

    async def get(self, call: Call) -> dict[str, Any]:
        o = sobject_or_404(call.params["sobject"])
        row = self.ctx.org.get_live(o, call.params["record_id"])
        picklists = self.ctx.org.state_country_picklists
        return record_body(o, row, call.version, _fields_param(call, o, picklists), picklists=picklists)

    async def update(self, call: Call) -> Response:
        o = sobject_or_404(call.params["sobject"])
        self.ctx.org.update(o, call.params["record_id"], await self._body(call), call.user_id)
        return Response(status_code=204)

    async def delete(self, call: Call) -> Response:
        o = sobject_or_404(call.params["sobject"])
        self.ctx.org.delete(o, call.params["record_id"])
        return Response(status_code=204)

    async def get_by_external_id(self, call: Call) -> dict[str, Any]:
        o = sobject_or_404(call.params["sobject"])
        f = o.lookup(call.params["field"])
        if f is None or not (f.external_id or f.name == "Id"):
            raise errors.bad_record_path(call.params["field"])
        if f.name == "Id":
            row = self.ctx.org.get_live(o, call.params["value"])
        else:
            matches = self.ctx.store.find_by(o.name, f.name, call.params["value"])
            if len(matches) > 1:
                raise SalesforceError(300, "MULTIPLE_RECORDS", "", [
                    f"/services/data/v{call.version}/sobjects/{o.name}/{m['Id']}" for m in matches])
            if not matches:
                raise errors.not_found()
            row = matches[0]
        picklists = self.ctx.org.state_country_picklists
        return record_body(o, row, call.version, _fields_param(call, o, picklists), picklists=picklists)

    async def upsert(self, call: Call) -> Response:
        o = sobject_or_404(call.params["sobject"])
        record_id, created = self.ctx.org.upsert(o, call.params["field"], call.params["value"],
                                                 await self._body(call))
        # v46+: 201 with the body when created, 200 with created=false when updated (FACTS §8).
        return errors.json_response({"id": record_id, "success": True, "errors": [], "created": created},
                                    201 if created else 200)

    # -- replication --------------------------------------------------------------------------------
    def _window(self, call: Call, days: int) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
        q = call.request.query_params
        if "start" not in q or "end" not in q:
            missing = "start" if "start" not in q else "end"
            raise SalesforceError(400, "MISSING_ARGUMENT", f"{missing} was not specified")
        try:
            start, end = _minute(parse_datetime(q["start"])), _minute(parse_datetime(q["end"]))
        except ValueError:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "Invalid date format: use ISO 8601") from None
        now = dt.datetime.now(dt.UTC)
        if start < _minute(now) - dt.timedelta(days=days):
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
        if end <= start:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  "startDate must chronologically precede endDate by more than one minute")
        # Changes are covered up to the end of the window or up to now, whichever is earlier.
        covered = min(end, now.replace(microsecond=now.microsecond // 1000 * 1000))
        return start, end, covered

    async def updated(self, call: Call) -> dict[str, Any]:
        o = sobject_or_404(call.params["sobject"])
        start, _, covered = self._window(call, UPDATED_DAYS)
        ids = [r[0] for r in self.ctx.store.db.execute(
            f'SELECT Id FROM "{o.name}" WHERE SystemModstamp >= ? AND SystemModstamp < ? AND IsDeleted = 0 '
            "ORDER BY SystemModstamp LIMIT ?", (sf_datetime(start), sf_datetime(covered), ID_LIMIT + 1))]
        if len(ids) > ID_LIMIT:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 600000")
        return {"ids": ids, "latestDateCovered": sf_datetime(covered)}

    async def deleted(self, call: Call) -> dict[str, Any]:
        o = sobject_or_404(call.params["sobject"])
        start, _, covered = self._window(call, DELETED_DAYS)
        rows = self.ctx.store.db.execute(
            f'SELECT Id, "{DELETED_AT}" FROM "{o.name}" WHERE "{DELETED_AT}" >= ? AND "{DELETED_AT}" < ? '
            f'ORDER BY "{DELETED_AT}" LIMIT ?', (sf_datetime(start), sf_datetime(covered), ID_LIMIT + 1)).fetchall()
        if len(rows) > ID_LIMIT:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 600000")
        # The delete log reaches back DELETED_DAYS; a window starting earlier means a full resync is due.
        horizon = _minute(dt.datetime.now(dt.UTC)) - dt.timedelta(days=DELETED_DAYS)
        return {"deletedRecords": [{"id": r[0], "deletedDate": r[1]} for r in rows],
                "earliestDateAvailable": sf_datetime(horizon), "latestDateCovered": sf_datetime(covered)}

    # -- query --------------------------------------------------------------------------------------
    async def _query(self, call: Call, include_deleted: bool) -> dict[str, Any]:
        soql = call.request.query_params.get("q", "")
        return self.ctx.engine.first_page(soql, include_deleted=include_deleted, batch=batch_size(call.request),
                                          version=call.version)

    async def query(self, call: Call) -> dict[str, Any]:
        return await self._query(call, False)

    async def query_all(self, call: Call) -> dict[str, Any]:
        return await self._query(call, True)

    async def query_more(self, call: Call) -> dict[str, Any]:
        return self.ctx.engine.next_page(call.params["locator"], batch_size(call.request), call.version, "query")

    async def query_all_more(self, call: Call) -> dict[str, Any]:
        return self.ctx.engine.next_page(call.params["locator"], batch_size(call.request), call.version,
                                         "queryAll")


"""sObject Collections: up to 200 records per call, per-record SaveResults, ``allOrNone`` (FACTS §9).

With ``allOrNone`` the whole call runs in one SQLite transaction that is rolled back on the first failure;
the failing records report their own errors and every other record reports
``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.catalog import COLLECTION_MAX, PREFIX_TO_OBJECT, ObjectDef
from crm_pipelines.sandbox.salesforce.context import DATA, Call, Context, routes
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import is_valid_id
from crm_pipelines.sandbox.salesforce.records import sobject_or_404
from crm_pipelines.sandbox.salesforce.rest_api import record_body

ROLLED_BACK = SalesforceError(
    400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


class _RollBack(Exception):
    pass


def _too_many() -> SalesforceError:
    return SalesforceError(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this call")


class CompositeApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        base = DATA + "/composite/sobjects"
        return routes(self.ctx, [
            ("POST", base, self.create),
            ("PATCH", base, self.update),
            ("DELETE", base, self.delete),
            ("GET", base + "/{sobject}", self.retrieve),
            ("PATCH", base + "/{sobject}/{field}", self.upsert),
        ])

    async def _records(self, call: Call) -> tuple[list[dict[str, Any]], bool]:
        body = await call.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise errors.json_parser_error("expected {\"allOrNone\": bool, \"records\": [...]}")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise _too_many()
        if any(not isinstance(r, dict) for r in records):
            raise errors.json_parser_error("each record must be a JSON object")
        return records, bool(body.get("allOrNone", False))

    def _run(self, items: list[Any], all_or_none: bool,
             action: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        failed = False
        try:
            with self.ctx.store.transaction():
                for i, item in enumerate(items):
                    try:
                        results[i] = {**action(item), "success": True, "errors": []}
                    except SalesforceError as err:
                        failed = True
                        results[i] = {"success": False, "errors": [err.as_save_error()]}
                        if all_or_none:
                            break
                if failed and all_or_none:
                    raise _RollBack
        except _RollBack:
            results = [r if r is not None and not r["success"] else
                       {"success": False, "errors": [ROLLED_BACK.as_save_error()]} for r in results]
        return [r for r in results if r is not None]

    @staticmethod
    def _type_of(record: dict[str, Any]) -> ObjectDef:
        attributes = record.get("attributes") or {}
        if not isinstance(attributes, dict) or not attributes.get("type"):
            raise SalesforceError(400, "INVALID_TYPE", "sObject type must be specified in attributes")
        return sobject_or_404(str(attributes["type"]))

    async def create(self, call: Call) -> list[dict[str, Any]]:
        records, all_or_none = await self._records(call)

        def act(record: dict[str, Any]) -> dict[str, Any]:
            o = self._type_of(record)
            if any(k.lower() == "id" for k in record):
                raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return {"id": self.ctx.org.create(o, record, call.user_id)}

        return self._run(records, all_or_none, act)

    async def update(self, call: Call) -> list[dict[str, Any]]:
        records, all_or_none = await self._records(call)

        def act(record: dict[str, Any]) -> dict[str, Any]:
            o = self._type_of(record)
            record_id = next((str(v) for k, v in record.items() if k.lower() == "id"), None)
            if not record_id:
                raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            self.ctx.org.update(o, record_id, record, call.user_id)
            return {"id": record_id}

        return self._run(records, all_or_none, act)

    async def upsert(self, call: Call) -> list[dict[str, Any]]:
        records, all_or_none = await self._records(call)
        o = sobject_or_404(call.params["sobject"])
        field = call.params["field"]

        def act(record: dict[str, Any]) -> dict[str, Any]:
            key = next((v for k, v in record.items() if k.lower() == field.lower()), None)
            if key in (None, ""):
                raise SalesforceError(400, "MISSING_ARGUMENT", f"{field} not specified", [field])
            record_id, created = self.ctx.org.upsert(o, field, str(key), record)
            return {"id": record_id, "created": created}

        return self._run(records, all_or_none, act)

    async def delete(self, call: Call) -> list[dict[str, Any]]:
        q = call.request.query_params
        ids = [i for i in q.get("ids", "").split(",") if i]
        if not ids:
            raise SalesforceError(400, "MISSING_ARGUMENT", "ids was not specified")
        if len(ids) > COLLECTION_MAX:
            raise _too_many()
        all_or_none = q.get("allOrNone", "false").lower() == "true"

        def act(record_id: str) -> dict[str, Any]:
            name = PREFIX_TO_OBJECT.get(record_id[:3]) if is_valid_id(record_id) else None
            if name is None:
                raise SalesforceError(400, "MALFORMED_ID", f"malformed id {record_id}", [])
            self.ctx.org.delete(sobject_or_404(name), record_id)
            return {"id": record_id}

        results = self._run(ids, all_or_none, act)
        # A delete result names the id even when it failed.
        return [{"id": i, **r} if "id" not in r else r for i, r in zip(ids, results, strict=False)]

    async def retrieve(self, call: Call) -> list[dict[str, Any] | None]:
        o = sobject_or_404(call.params["sobject"])
        q = call.request.query_params
        ids = [i for i in q.get("ids", "").split(",") if i]
        fields = [f for f in q.get("fields", "").split(",") if f]
        if not ids or not fields:
            raise SalesforceError(400, "MISSING_ARGUMENT", "ids and fields must be specified")
        if len(ids) > 2000:
            raise _too_many()
        out: list[dict[str, Any] | None] = []
        for record_id in ids:
            try:
                out.append(record_body(o, self.ctx.org.get_live(o, record_id), call.version, fields,
                                       picklists=self.ctx.org.state_country_picklists))
            except SalesforceError:
                out.append(None)
        return out

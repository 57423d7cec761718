"""Associations v4 (FACTS §10, §1, §3): per-record reads and writes, batch read/create/archive, labels."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.api import (
    Context,
    batch_body,
    endpoint,
    inputs_of,
    json_body,
    now_iso,
    resolve,
)
from crm_pipelines.sandbox.hubspot.catalog import (
    ASSOC_BATCH_READ_MAX,
    ASSOC_BATCH_WRITE_MAX,
    ASSOC_PAGE_MAX,
    ASSOCIATION_TYPES,
    OBJECT_TYPES,
    association_label,
)


def _types(from_type: str, to_type: str, types: list[tuple[int, str]]) -> list[dict[str, Any]]:
    return [
        {"category": category, "typeId": type_id, "label": association_label(from_type, to_type, type_id)}
        for type_id, category in types
    ]


def _id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.validation(f"{value!r} is not a valid object id") from None


class AssociationsApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.portal = ctx.portal

    def routes(self) -> list[Route]:
        e = lambda h: endpoint(self.ctx, h)  # noqa: E731
        one = "/crm/v4/objects/{object_type}/{object_id}/associations"
        batch = "/crm/v4/associations/{object_type}/{to_type}"
        return [
            Route(one + "/default/{to_type}/{to_id}", e(self.create_default), methods=["PUT"]),
            Route(one + "/{to_type}", e(self.list), methods=["GET"]),
            Route(one + "/{to_type}/{to_id}", e(self.create_labeled), methods=["PUT"]),
            Route(one + "/{to_type}/{to_id}", e(self.archive_one), methods=["DELETE"]),
            Route(batch + "/batch/read", e(self.batch_read), methods=["POST"]),
            Route(batch + "/batch/create", e(self.batch_create), methods=["POST"]),
            Route(batch + "/batch/associate/default", e(self.batch_default), methods=["POST"]),
            Route(batch + "/batch/archive", e(self.batch_archive), methods=["POST"]),
            Route(batch + "/batch/labels/archive", e(self.batch_archive_labels), methods=["POST"]),
            Route(batch + "/labels", e(self.labels), methods=["GET"]),
        ]

    def _pair(self, request: Request) -> tuple[str, str]:
        """Any two object types: reads answer (empty where nothing is linked); writes without explicit type
        ids need a pair HubSpot defines a default type for (``Portal.default_type_id`` says 400 otherwise)."""
        return resolve(request).name, resolve(request, "to_type").name

    def _existing(self, object_type: str, object_id: int) -> None:
        if self.portal.store.get(object_type, object_id) is None:
            raise errors.not_found(str(object_id))

    def _labels_pair(self, frm: str, frm_id: int, to: str, to_id: int) -> dict[str, Any]:
        linked = self.portal.store.associations_of(frm, frm_id, to, to_id - 1, 1).get(to_id, [])
        return {
            "fromObjectTypeId": OBJECT_TYPES[frm].type_id,
            "fromObjectId": frm_id,
            "toObjectTypeId": OBJECT_TYPES[to].type_id,
            "toObjectId": to_id,
            "labels": [label for t, _ in linked if (label := association_label(frm, to, t))],
        }

    async def list(self, request: Request) -> Response:
        frm, to = self._pair(request)
        from_id = _id(request.path_params["object_id"])
        limit = int(request.query_params.get("limit", ASSOC_PAGE_MAX))
        if not 1 <= limit <= ASSOC_PAGE_MAX:
            raise errors.validation(f"limit must be between 1 and {ASSOC_PAGE_MAX}")
        after = int(request.query_params.get("after") or 0)
        linked = self.portal.store.associations_of(frm, from_id, to, after, limit + 1)
        ids = list(linked)
        body: dict[str, Any] = {
            "results": [{"toObjectId": i, "associationTypes": _types(frm, to, linked[i])} for i in ids[:limit]]
        }
        if len(ids) > limit:
            cursor = str(ids[limit - 1])
            body["paging"] = {
                "next": {"after": cursor, "link": f"{self.ctx.base_url}{request.url.path}?after={cursor}"}
            }
        return errors.json_response(body)

    async def create_default(self, request: Request) -> Response:
        frm, to = self._pair(request)
        from_id, to_id = _id(request.path_params["object_id"]), _id(request.path_params["to_id"])
        self._existing(frm, from_id)
        self._existing(to, to_id)
        type_id = self.portal.default_type_id(frm, to)
        with self.portal.store.transaction():
            self.portal.associate(frm, from_id, to, to_id, [("HUBSPOT_DEFINED", type_id)])
        started = now_iso()
        return errors.json_response(batch_body([self._default_result(frm, from_id, to, to_id)], started))

    def _default_result(self, frm: str, from_id: int, to: str, to_id: int) -> dict[str, Any]:
        return {
            "from": {"id": str(from_id)},
            "to": {"id": str(to_id)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": self.portal.default_type_id(frm, to),
            },
        }

    async def create_labeled(self, request: Request) -> Response:
        frm, to = self._pair(request)
        from_id, to_id = _id(request.path_params["object_id"]), _id(request.path_params["to_id"])
        self._existing(frm, from_id)
        self._existing(to, to_id)
        specs = await json_body(request)
        if not isinstance(specs, list):
            raise errors.validation("Body must be a list of association specs")
        with self.portal.store.transaction():
            self.portal.associate(frm, from_id, to, to_id, self._spec_types(specs))
        return errors.json_response(self._labels_pair(frm, from_id, to, to_id), 201)

    @staticmethod
    def _spec_types(specs: list[Any]) -> list[tuple[str, int]]:
        try:
            return [(s["associationCategory"], int(s["associationTypeId"])) for s in specs]
        except (KeyError, TypeError, ValueError):
            raise errors.validation("Each association spec needs associationCategory and associationTypeId") from None

    async def archive_one(self, request: Request) -> Response:
        frm, to = self._pair(request)
        from_id, to_id = _id(request.path_params["object_id"]), _id(request.path_params["to_id"])
        with self.portal.store.transaction():
            self.portal.dissociate(frm, from_id, to, to_id)
        return Response(status_code=204)

    async def batch_read(self, request: Request) -> Response:
        frm, to = self._pair(request)
        inputs = inputs_of(await json_body(request), ASSOC_BATCH_READ_MAX)
        started = now_iso()
        results, missing = [], []
        from_ids = [_id(item.get("id")) for item in inputs]
        # the batch's records and links in two queries: a query per id held the event loop (every other
        # request waiting, its rate-limit count delayed) for tens of milliseconds a batch of 1,000
        live = self.portal.store.get_many(frm, from_ids)
        links = self.portal.store.associations_of_many(frm, [i for i in from_ids if i in live], to)
        for from_id in from_ids:
            if from_id not in live:
                missing.append(str(from_id))
                continue
            linked = links.get(from_id, {})
            results.append(
                {
                    "from": {"id": str(from_id)},
                    "to": [{"toObjectId": i, "associationTypes": _types(frm, to, t)} for i, t in linked.items()],
                }
            )
        if not missing:
            return errors.json_response(batch_body(results, started))
        err = errors.HubSpotError(
            404, "OBJECT_NOT_FOUND", f"No {frm} found with these ids", context={"fromObjectId": missing}
        )
        return errors.json_response(batch_body(results, started, [err.as_batch_error()]), 207)

    async def batch_create(self, request: Request) -> Response:
        frm, to = self._pair(request)
        inputs = inputs_of(await json_body(request), ASSOC_BATCH_WRITE_MAX)
        started = now_iso()
        pairs = []
        with self.portal.store.transaction():
            for item in inputs:
                from_id, to_id = _id((item.get("from") or {}).get("id")), _id((item.get("to") or {}).get("id"))
                self._existing(frm, from_id)
                self._existing(to, to_id)
                self.portal.associate(frm, from_id, to, to_id, self._spec_types(item.get("types") or []))
                pairs.append((from_id, to_id))
        results = [self._labels_pair(frm, f, to, t) for f, t in pairs]
        return errors.json_response(batch_body(results, started), 201)

    async def batch_default(self, request: Request) -> Response:
        frm, to = self._pair(request)
        inputs = inputs_of(await json_body(request), ASSOC_BATCH_WRITE_MAX)
        started = now_iso()
        type_id = self.portal.default_type_id(frm, to)
        results = []
        with self.portal.store.transaction():
            for item in inputs:
                from_id, to_id = _id((item.get("from") or {}).get("id")), _id((item.get("to") or {}).get("id"))
                self._existing(frm, from_id)
                self._existing(to, to_id)
                self.portal.associate(frm, from_id, to, to_id, [("HUBSPOT_DEFINED", type_id)])
                results.append(self._default_result(frm, from_id, to, to_id))
        return errors.json_response(batch_body(results, started))

    async def batch_archive(self, request: Request) -> Response:
        frm, to = self._pair(request)
        inputs = inputs_of(await json_body(request), ASSOC_BATCH_WRITE_MAX)
        with self.portal.store.transaction():
            for item in inputs:
                from_id = _id((item.get("from") or {}).get("id"))
                for target in item.get("to") or []:
                    self.portal.dissociate(frm, from_id, to, _id(target.get("id")))
        return Response(status_code=204)

    async def batch_archive_labels(self, request: Request) -> Response:
        frm, to = self._pair(request)
        inputs = inputs_of(await json_body(request), ASSOC_BATCH_WRITE_MAX)
        with self.portal.store.transaction():
            for item in inputs:
                from_id, to_id = _id((item.get("from") or {}).get("id")), _id((item.get("to") or {}).get("id"))
                type_ids = [t for _, t in self._spec_types(item.get("types") or [])]
                self.portal.dissociate(frm, from_id, to, to_id, type_ids)
        return Response(status_code=204)

    async def labels(self, request: Request) -> Response:
        frm, to = self._pair(request)
        if (frm, to) not in ASSOCIATION_TYPES:
            return errors.json_response({"results": []})
        default, primary = ASSOCIATION_TYPES[(frm, to)]
        results = [{"category": "HUBSPOT_DEFINED", "typeId": default, "label": None}]
        if primary is not None:
            results.append({"category": "HUBSPOT_DEFINED", "typeId": primary, "label": "Primary"})
        return errors.json_response({"results": results})

"""HubSpot reads and writes over CRM v3/v4: full reads, modified-window reads via search, archived sweeps,
associations, pipelines, owners, properties and batch writes with per-record outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import ApiError, NotFoundError
from crm_pipelines.crm.http import ApiClient, Auth, verify_option
from crm_pipelines.crm.hubspot.dialect import HUBSPOT_LIMITS, HubSpotDialect
from crm_pipelines.crm.hubspot.full_read import SEARCH_PAGE_MAX, iter_both_buckets
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.outcomes import WriteOutcome
from crm_pipelines.crm.ratelimit import RateLimiter, RateLimits, Window

LIST_PAGE_MAX = 100  # FACTS §1
SEARCH_TOTAL_CAP = 10_000  # FACTS §2: paging past it is a 400
BATCH_MAX = 100  # FACTS §3
FIND_MAX = 100  # values per search IN filter, and results per search page (FACTS §4)
ASSOCIATION_BATCH_READ_MAX = 1_000  # FACTS §3
HISTORY_BATCH_READ_MAX = 50  # FACTS: batch/read with propertiesWithHistory takes at most 50 inputs
# The search index trails writes by "a few moments" (FACTS §2); windows read again this far back.
SEARCH_INDEX_LAG_MS = 5 * 60 * 1000


def modified_property(object_type: str) -> str:
    """Contacts track modification in ``lastmodifieddate``; other objects in ``hs_lastmodifieddate`` (FACTS §8)."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


class HubSpotClient:
    def __init__(
        self,
        connection: str,
        base_url: str,
        auth: Auth,
        *,
        budget: CallBudget | None = None,
        meter: Meter | None = None,
        ca_bundle: str | None = None,
        limits: RateLimits = HUBSPOT_LIMITS,
        **client_options: Any,
    ) -> None:
        self.api = ApiClient(
            connection,
            base_url,
            dialect=HubSpotDialect(),
            auth=auth,
            limits=limits,
            budget=budget,
            meter=meter,
            verify=verify_option(ca_bundle),
            **client_options,
        )

    async def __aenter__(self) -> HubSpotClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.aclose()

    # -- reads ---------------------------------------------------------------------------------------
    async def iter_all(
        self, object_type: str, properties: Sequence[str], *, archived: bool = False,
        associations: Sequence[str] = (),
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every record of ``object_type`` (or every archived one), a page of up to 100 at a time; with
        ``associations`` (object types), each record carries an ``associations`` block, empty when it has none
        (``inline_associations`` reads it)."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE_MAX, "properties": ",".join(properties)}
            if archived:
                params["archived"] = "true"
            if associations:
                params["associations"] = ",".join(associations)
            if after:
                params["after"] = after
            page = await self.api.request(
                "GET", f"/crm/v3/objects/{object_type}", endpoint="GET /crm/v3/objects/{type}", params=params
            )
            if associations:
                for record in page.data["results"]:
                    record.setdefault("associations", {})  # HubSpot leaves the block out when it would be empty
            yield page.data["results"]
            after = ((page.data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    async def iter_full(
        self, object_type: str, properties: Sequence[str], window: tuple[int, int] | None = None,
        associations: Sequence[str] = (),
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every live record, or those modified in ``window`` ([start, end) in epoch ms), read through the list
        endpoint and search at once, each on its own rate bucket (FACTS §2, §4; issue 17): see ``full_read``.
        Pages come in no particular order. The list endpoint cannot filter: it reads every record of its part
        of the id space, so a window is worth reading this way only when it holds most of the records. With
        ``associations``, the list's records carry their associations inline (``iter_all``); search's do not."""
        filters: list[dict[str, str]] = []
        wanted = None
        if window is not None:
            start_ms, end_ms = window
            prop = modified_property(object_type)
            filters = [
                {"propertyName": prop, "operator": "GTE", "value": str(start_ms)},
                {"propertyName": prop, "operator": "LT", "value": str(end_ms)},
            ]

            def wanted(record: dict[str, Any]) -> bool:
                return start_ms <= _epoch_ms(record.get("updatedAt")) < end_ms

        async for page in iter_both_buckets(
            object_type,
            properties,
            list_pages=lambda obj, props: self.iter_all(obj, props, associations=associations),
            search=self._post_search,
            search_filters=filters,
            wanted=wanted,
            list_pace=self._steady_pace().acquire,
        ):
            yield page

    def _steady_pace(self) -> RateLimiter:
        """The list walker's pace: the connection's configured ten-second bucket (tier, API add-on) spread
        evenly over each second. Unpaced, a rolling window lets 190 calls go at once and then none for ten
        seconds; the read that follows (the next object, a write-back) would inherit a spent window. Shared
        by the connection's list walkers in this process (objects read side by side split the pace)."""
        windows = self.api.limiter.limits.buckets.get("default", ())
        per_second = tuple(Window(max(1, int(w.calls / w.period_s)), 1.0) for w in windows if w.period_s >= 1.0)
        return RateLimiter(
            RateLimits({"default": per_second}, margin_s=0.0),
            sleep=self.api.limiter.sleep,
            shared_key=(self.api.connection, f"{self.api.base_url} list pace"),
        )

    async def iter_full_by_search(
        self, object_type: str, properties: Sequence[str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every live record through search alone (200 a call, its own bucket): the full read before issue 17,
        kept as the reference the split read is compared with."""
        async for page in self.iter_modified(object_type, 0, _now_ms() + 24 * 3600 * 1000, properties):
            yield page

    async def count_modified(self, object_type: str, start_ms: int, end_ms: int) -> int:
        """How many records changed in [start, end): one search call of one result (cheap change polling)."""
        page = await self._search(object_type, start_ms, end_ms, [], limit=1, after=0)
        return int(page["total"])

    async def iter_modified(
        self,
        object_type: str,
        start_ms: int,
        end_ms: int,
        properties: Sequence[str],
        *,
        on_total: Callable[[int], None] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Records whose modification time lies in [start, end), through search, oldest change first.

        One query may page through at most 10,000 results (FACTS §2). Before reaching that cap the read
        restarts from the modification time of the last record seen (keyset paging on time), skipping the
        few records at that exact instant it already returned. Nothing is missed however many records
        changed, and no call is spent on probing; only if more than 10,000 records share one millisecond
        does it walk that instant by id. Callers overlap consecutive windows by ``SEARCH_INDEX_LAG_MS``.
        ``on_total`` receives the first query's ``total``: HubSpot's count for the whole window, free.
        """
        lo = start_ms
        at_lo: set[str] = set()  # ids already returned whose modification time is exactly ``lo``
        while True:
            offset, newest, at_newest = 0, lo, set(at_lo)
            while True:
                page = await self._search(object_type, lo, end_ms, properties, limit=SEARCH_PAGE_MAX, after=offset)
                if on_total is not None:
                    on_total(int(page["total"]))
                    on_total = None
                fresh = [r for r in page["results"] if not (r["id"] in at_lo and _epoch_ms(r.get("updatedAt")) == lo)]
                for record in page["results"]:
                    stamp = _epoch_ms(record.get("updatedAt"))
                    if stamp > newest:
                        newest, at_newest = stamp, set()
                    if stamp == newest:
                        at_newest.add(record["id"])
                if fresh:
                    yield fresh
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    return
                offset = int(after)
                if offset + SEARCH_PAGE_MAX > SEARCH_TOTAL_CAP:
                    break
            if newest == lo:
                # 10,000 records or more changed in this one millisecond: walk them by id, then go on
                async for page in self._iter_instant_by_id(object_type, lo, properties):
                    fresh = [r for r in page if r["id"] not in at_newest]
                    if fresh:
                        yield fresh
                lo, at_lo = lo + 1, set()
            else:
                lo, at_lo = newest, at_newest

    async def _iter_instant_by_id(
        self, object_type: str, at_ms: int, properties: Sequence[str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        last_id = "0"
        while True:
            body = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": modified_property(object_type), "operator": "EQ", "value": str(at_ms)},
                            {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                        ]
                    }
                ],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": SEARCH_PAGE_MAX,
            }
            page = await self._post_search(object_type, body)
            if not page["results"]:
                return
            yield page["results"]
            last_id = page["results"][-1]["id"]

    async def _search(
        self, object_type: str, start_ms: int, end_ms: int, properties: Sequence[str], *, limit: int, after: int
    ) -> dict[str, Any]:
        prop = modified_property(object_type)
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": prop, "operator": "GTE", "value": str(start_ms)},
                        {"propertyName": prop, "operator": "LT", "value": str(end_ms)},
                    ]
                }
            ],
            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
            "after": str(after),
        }
        return await self._post_search(object_type, body)

    async def _post_search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.request(
            "POST",
            f"/crm/v3/objects/{object_type}/search",
            endpoint="POST /crm/v3/objects/{type}/search",
            bucket="search",
            json=body,
            idempotent=True,  # a query sent as a POST: it only reads
        )
        return response.data

    async def iter_archived_since(
        self, object_type: str, since_ms: int, properties: Sequence[str] = ()
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Archived (deleted) records archived at or after ``since_ms`` (SPEC DEL-5's own cursor).

        The list endpoint cannot filter archived records by time, so the sweep pages them all and keeps
        the recent ones; archived records are few next to live ones and the sweep runs on its own cursor.
        """
        async for page in self.iter_all(object_type, properties, archived=True):
            recent = [r for r in page if _epoch_ms(r.get("archivedAt")) >= since_ms]
            if recent:
                yield recent

    async def associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[dict]]:
        """For each id, its associated ``to_type`` records as ``{"toObjectId", "associationTypes"}``."""
        out: dict[str, list[dict]] = {}
        for chunk in _chunks(list(ids), ASSOCIATION_BATCH_READ_MAX):
            response = await self.api.request(
                "POST",
                f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                endpoint="POST /crm/v4/associations/{from}/{to}/batch/read",
                json={"inputs": [{"id": str(i)} for i in chunk]},
                ok=(207,),
                idempotent=True,  # a batch read: it only reads
            )
            for result in response.data.get("results", []):
                out[str(result["from"]["id"])] = result.get("to", [])
        return out

    async def property_times(self, object_type: str, ids: Sequence[str],
                             properties: Sequence[str]) -> dict[str, dict[str, str]]:  # fmt: skip
        """For each id that exists, when each of ``properties`` last changed (its newest property-history
        entry, ISO time), from batch reads with ``propertiesWithHistory`` (50 records a call). A property
        never set has no entry."""
        async def read(chunk: list) -> list[dict[str, Any]]:
            response = await self.api.request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/read",
                endpoint="POST /crm/v3/objects/{type}/batch/read",
                json={"inputs": [{"id": str(i)} for i in chunk], "properties": [],
                      "propertiesWithHistory": list(properties)},
                ok=(200, 207),  # 207: some ids are gone since the search saw them (deleted in between)
                idempotent=True,  # a batch read: it only reads
            )
            return response.data.get("results", [])

        out: dict[str, dict[str, str]] = {}
        # side by side: the rate limiter paces them, and a page of 200 records is four calls
        for results in await asyncio.gather(*(read(c) for c in _chunks(list(ids), HISTORY_BATCH_READ_MAX))):
            for result in results:
                history = result.get("propertiesWithHistory") or {}
                out[str(result["id"])] = {
                    name: max((e["timestamp"] for e in entries), key=lambda t: datetime.fromisoformat(t))
                    for name, entries in history.items() if entries}  # fmt: skip
        return out

    async def pipelines(self, object_type: str = "deals") -> list[dict[str, Any]]:
        response = await self.api.request(
            "GET", f"/crm/v3/pipelines/{object_type}", endpoint="GET /crm/v3/pipelines/{type}"
        )
        return response.data["results"]

    async def owners(self) -> list[dict[str, Any]]:
        owners: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["after"] = after
            page = await self.api.request("GET", "/crm/v3/owners", endpoint="GET /crm/v3/owners", params=params)
            owners += page.data["results"]
            after = ((page.data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return owners

    async def properties(self, object_type: str) -> list[dict[str, Any]]:
        response = await self.api.request(
            "GET", f"/crm/v3/properties/{object_type}", endpoint="GET /crm/v3/properties/{type}"
        )
        return response.data["results"]

    async def property(self, object_type: str, name: str) -> dict[str, Any] | None:
        """One property's definition, or None when the portal has no such property (or only in its recycle
        bin): one call, where reading them all would be a large body for one name."""
        try:
            response = await self.api.request(
                "GET", f"/crm/v3/properties/{object_type}/{name}", endpoint="GET /crm/v3/properties/{type}/{name}"
            )
        except NotFoundError:
            return None
        return response.data

    # -- writes (the shared verbs, ``crm.outcomes.Writer``) -----------------------------------------------
    async def create(self, obj: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        return await self.batch_write("create", obj, [{"properties": r} for r in records])

    async def update(self, obj: str, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[WriteOutcome]:
        return await self.batch_write("update", obj, [{"id": i, "properties": r} for i, r in updates])

    async def upsert(self, obj: str, key_field: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        inputs = [
            {"idProperty": key_field, "id": r[key_field], "properties": {k: v for k, v in r.items() if k != key_field}}
            for r in records
        ]
        return await self.batch_write("upsert", obj, inputs)

    async def delete(self, obj: str, ids: Sequence[str]) -> list[WriteOutcome]:
        return await self.batch_write("archive", obj, [{"id": i} for i in ids])

    async def find(self, obj: str, field: str, values: Sequence[str]) -> dict[str, str]:
        """Lower-cased value of ``field`` -> the id of a record holding it, among ``values`` (a write in doubt
        is looked for before it is sent again): one search per 100 values."""
        out: dict[str, str] = {}
        # IN matches string values lowercased, as HubSpot's index holds them (FACTS §2)
        wanted = list(dict.fromkeys(str(v).lower() for v in values if v))
        for start in range(0, len(wanted), FIND_MAX):
            body = {"filterGroups": [{"filters": [
                        {"propertyName": field, "operator": "IN", "values": wanted[start : start + FIND_MAX]}]}],
                    "properties": [field], "limit": FIND_MAX}  # fmt: skip
            for record in (await self._post_search(obj, body))["results"]:
                value = (record.get("properties") or {}).get(field)
                if value:
                    out.setdefault(str(value).lower(), str(record["id"]))
        return out

    async def associate(self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]) -> list[WriteOutcome]:
        """Default (unlabelled) associations ``from_type`` -> ``to_type``, 100 pairs a call (v4 batch; its limit
        is unverified, FACTS §3: the records' is assumed). Associating twice is one association: replay-safe. A
        batch the API refuses as a whole (a record gone) is split until the bad pair stands alone."""
        outcomes: list[WriteOutcome] = []
        for offset in range(0, len(pairs), BATCH_MAX):
            outcomes += await self._associate_chunk(from_type, to_type, list(pairs[offset : offset + BATCH_MAX]),
                                                    offset)  # fmt: skip
        return outcomes

    async def _associate_chunk(self, from_type: str, to_type: str, pairs: list[tuple[str, str]],
                               offset: int) -> list[WriteOutcome]:
        try:
            await self.api.request(
                "POST", f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
                endpoint="POST /crm/v4/associations/{from}/{to}/batch/associate/default",
                json={"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in pairs]}, ok=(207,),
            )
        except ApiError as error:
            if error.status >= 500 or len(pairs) == 1:
                if len(pairs) == 1:
                    return [WriteOutcome(offset, False, pairs[0][0], code=error.code, message=error.api_message)]
                raise
            half = len(pairs) // 2
            return (await self._associate_chunk(from_type, to_type, pairs[:half], offset)
                    + await self._associate_chunk(from_type, to_type, pairs[half:], offset + half))  # fmt: skip
        return [WriteOutcome(offset + i, True, a) for i, (a, _b) in enumerate(pairs)]

    async def create_pipeline(self, object_type: str, label: str, stages: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A new pipeline (DEAL-3) with ``stages`` (``label``, ``displayOrder``, ``metadata``); the API's
        answer, with the ids it gave. Not replay-safe: a pipeline is found again by its label first."""
        response = await self.api.request(
            "POST", f"/crm/v3/pipelines/{object_type}", endpoint="POST /crm/v3/pipelines/{type}",
            json={"label": label, "displayOrder": 0, "stages": list(stages)}, ok=(201,), replay_safe=False,
        )
        return response.data

    async def create_stage(self, object_type: str, pipeline_id: str, stage: dict[str, Any]) -> dict[str, Any]:
        """A stage added to an existing pipeline (DEAL-3: a record type's stage it lacks)."""
        response = await self.api.request(
            "POST", f"/crm/v3/pipelines/{object_type}/{pipeline_id}/stages",
            endpoint="POST /crm/v3/pipelines/{type}/{id}/stages", json=stage, ok=(201,), replay_safe=False,
        )
        return response.data

    async def batch_write(
        self, operation: str, object_type: str, inputs: Sequence[dict[str, Any]]
    ) -> list[WriteOutcome]:
        """create / update / upsert / archive in chunks of 100, one outcome per input, in input order.

        HubSpot fails a whole batch for one bad input unless every input carries an ``objectWriteTraceId``
        (FACTS §3), so inputs are traced by position; a batch that still fails as a whole is bisected
        until the bad inputs stand alone. Good records are written, bad ones come back with the API's
        code and message.
        """
        if operation not in {"create", "update", "upsert", "archive"}:
            raise ValueError(f"unknown batch operation {operation!r}")
        outcomes: list[WriteOutcome] = []
        for offset in range(0, len(inputs), BATCH_MAX):
            outcomes += await self._write_chunk(
                operation, object_type, list(inputs[offset : offset + BATCH_MAX]), offset
            )
        return sorted(outcomes, key=lambda o: o.index)

    async def _write_chunk(
        self, operation: str, object_type: str, inputs: list[dict[str, Any]], offset: int
    ) -> list[WriteOutcome]:
        traced = [
            {**item, "objectWriteTraceId": str(offset + i)} if operation != "archive" else item
            for i, item in enumerate(inputs)
        ]
        try:
            response = await self.api.request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/{operation}",
                endpoint=f"POST /crm/v3/objects/{{type}}/batch/{operation}",
                json={"inputs": traced},
                ok=(207,),
                expect_json=operation != "archive",
                replay_safe=operation != "create",  # a create sent twice makes two records
            )
        except ApiError as error:
            if error.status >= 500 or len(inputs) == 1:
                if len(inputs) == 1:
                    return [
                        WriteOutcome(offset, False, inputs[0].get("id"), code=error.code, message=error.api_message)
                    ]
                raise
            half = len(inputs) // 2
            return await self._write_chunk(operation, object_type, inputs[:half], offset) + await self._write_chunk(
                operation, object_type, inputs[half:], offset + half
            )
        if operation == "archive":
            return [WriteOutcome(offset + i, True, str(item["id"])) for i, item in enumerate(inputs)]
        return _outcomes(response.data, inputs, offset, operation)


def _outcomes(body: dict[str, Any], inputs: list[dict[str, Any]], offset: int, operation: str) -> list[WriteOutcome]:
    results = body.get("results", [])
    outcomes: list[WriteOutcome] = []
    failed: set[int] = set()
    for error in body.get("errors", []):
        for trace in (error.get("context") or {}).get("objectWriteTraceId", []):
            index = int(trace)
            failed.add(index)
            code = error.get("category")
            if error.get("errors"):
                code = f"{code}/{error['errors'][0].get('code')}"
            outcomes.append(WriteOutcome(index, False, code=code, message=error.get("message")))
    traced = {r.get("objectWriteTraceId"): r for r in results if r.get("objectWriteTraceId") is not None}
    if traced:
        for trace, record in traced.items():
            outcomes.append(WriteOutcome(int(trace), True, record["id"], record.get("new"), record=record))
    else:
        # results without trace ids come back in input order for the inputs that did not fail
        remaining = [offset + i for i in range(len(inputs)) if offset + i not in failed]
        for index, record in zip(remaining, results, strict=False):
            outcomes.append(WriteOutcome(index, True, record["id"], record.get("new"), record=record))
    return outcomes


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _epoch_ms(iso: str | None) -> int:
    if not iso:
        return 0
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)

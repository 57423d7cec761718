"""Dataverse Web API reads and writes: paged and windowed reads, counts, change tracking, ``$batch`` writes.

Reads page with ``Prefer: odata.maxpagesize=5000`` (the largest page, FACTS §C) and follow
``@odata.nextLink`` verbatim. Incremental reads use change tracking (delta links, deletions included,
FACTS §G), which refuses ``$filter``; ``modifiedon`` windows serve partitioned reads and backfills, and keep
working when a delta link has expired and its feed has to start over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.dynamics import batch, close
from crm_pipelines.crm.dynamics.dialect import DYNAMICS_LIMITS, DynamicsDialect
from crm_pipelines.crm.dynamics.entities import logical_name, primary_key
from crm_pipelines.crm.dynamics.odata import Filter, literal, modified_between, name, one_of
from crm_pipelines.crm.dynamics.writes import BatchWriter
from crm_pipelines.crm.errors import ApiError, NotFoundError
from crm_pipelines.crm.http import ApiClient, ApiResponse, Auth, verify_option
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.outcomes import WriteOutcome
from crm_pipelines.crm.ratelimit import RateLimits

API_VERSION = "v9.2"
PAGE_MAX = 5_000  # odata.maxpagesize ceiling (FACTS §C)
COUNT_MAX = 5_000  # $count stops counting here (FACTS §C)
FIND_MAX = 100  # values per In() filter of a look-up
TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
_ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


class DeltaLinkExpired(ApiError):
    """The delta token is older than the organization keeps changes (7 days by default): read in full again."""


@dataclass
class ChangePage:
    """One page of a change-tracking read: rows new or changed, then ids deleted (FACTS §G)."""

    records: list[dict[str, Any]]
    deleted: list[str]
    delta_link: str | None = None  # on the last page: where the next incremental read starts


def is_deleted_entity(item: dict[str, Any]) -> bool:
    return item.get("reason") == "deleted" or str(item.get("@odata.context", "")).endswith("/$deletedEntity")


class DynamicsClient:
    def __init__(
        self,
        connection: str,
        org_url: str,
        auth: Auth,
        *,
        budget: CallBudget | None = None,
        meter: Meter | None = None,
        ca_bundle: str | None = None,
        limits: RateLimits = DYNAMICS_LIMITS,
        **client_options: Any,
    ) -> None:
        self.org_url = org_url.rstrip("/")
        self.api_url = f"{self.org_url}/api/data/{API_VERSION}"
        self.api = ApiClient(
            connection,
            self.api_url,
            dialect=DynamicsDialect(),
            auth=auth,
            limits=limits,
            budget=budget,
            meter=meter,
            verify=verify_option(ca_bundle),
            **client_options,
        )

    async def __aenter__(self) -> DynamicsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.aclose()

    async def _get(
        self, url: str, endpoint: str, params: dict[str, str] | None = None, prefer: Sequence[str] = ()
    ) -> ApiResponse:
        headers = dict(_ODATA_HEADERS)
        if prefer:
            headers["Prefer"] = ",".join(prefer)
        return await self.api.request("GET", url, endpoint=endpoint, params=params, headers=headers)

    # -- reads ---------------------------------------------------------------------------------------
    async def iter_pages(
        self,
        entity_set: str,
        select: Sequence[str],
        *,
        filter: Filter | None = None,
        orderby: Sequence[str] = (),
        page_size: int = PAGE_MAX,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Rows of ``entity_set`` (matching ``filter``), a page of up to ``page_size`` at a time."""
        params = {"$select": ",".join(name(s) for s in select)}
        if filter is not None:
            params["$filter"] = filter.text
        if orderby:
            params["$orderby"] = ",".join(_order_item(o) for o in orderby)
        prefer = (f"odata.maxpagesize={min(page_size, PAGE_MAX)}",)
        endpoint = f"GET /{name(entity_set)}"
        page = await self._get(entity_set, endpoint, params, prefer)
        while True:
            if page.data["value"]:
                yield page.data["value"]
            next_link = page.data.get("@odata.nextLink")
            if not next_link:
                return
            # the link repeats the query with a paging cookie; it is followed verbatim (FACTS §A8)
            page = await self._get(next_link, endpoint, None, prefer)

    async def iter_all(self, entity_set: str, select: Sequence[str]) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in self.iter_pages(entity_set, select):
            yield page

    async def iter_modified(
        self, entity_set: str, start: dt.datetime, end: dt.datetime, select: Sequence[str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Rows whose ``modifiedon`` lies in [start, end), oldest change first. ``modifiedon`` has whole
        seconds, so windows should too. Server-side keyset paging has no result cap to work around."""
        async for page in self.iter_pages(
            entity_set, select, filter=modified_between(start, end), orderby=("modifiedon asc",)
        ):
            yield page

    async def count(self, entity_set: str, filter: Filter | None = None) -> int | None:
        """How many rows match, in one call of no rows; None when more than the 5,000 ``$count`` counts."""
        params = {"$select": primary_key(entity_set), "$count": "true", "$top": "0"}
        if filter is not None:
            params["$filter"] = filter.text
        prefer = (f'odata.include-annotations="{TOTAL_COUNT},{COUNT_EXCEEDED}"',)
        page = await self._get(entity_set, f"GET /{name(entity_set)} $count", params, prefer)
        data = page.data
        total = data.get(f"@{TOTAL_COUNT}")
        exceeded = data.get(f"@{COUNT_EXCEEDED}")
        count = data.get("@odata.count")
        if exceeded or total == -1 or count is None or (total is None and count >= COUNT_MAX):
            return None
        return int(total if total is not None else count)

    async def count_modified(self, entity_set: str, start: dt.datetime, end: dt.datetime) -> int:
        """Rows modified in [start, end) (OPS-7): one ``$count`` call; past its 5,000 cap the window's ids are
        paged and counted (one call per 5,000, the least any exact count past the cap can cost: halving the
        window instead needs more calls whenever the rows cluster in time)."""
        window = modified_between(start, end)
        found = await self.count(entity_set, window)
        if found is not None:
            return found
        total = 0
        async for page in self.iter_pages(entity_set, [primary_key(entity_set)], filter=window):
            total += len(page)
        return total

    async def changes(
        self, entity_set: str, select: Sequence[str], delta_link: str | None = None
    ) -> AsyncIterator[ChangePage]:
        """Change tracking: without ``delta_link`` every current row (the initial sync); with one, rows new or
        changed since it, then rows deleted since it. The last page carries the next delta link."""
        prefer = ("odata.track-changes", f"odata.maxpagesize={PAGE_MAX}")
        endpoint = f"GET /{name(entity_set)} delta"
        try:
            if delta_link is None:
                params = {"$select": ",".join(name(s) for s in select)}
                page = await self._get(entity_set, endpoint, params, prefer)
            else:
                page = await self._get(delta_link, endpoint, None, prefer)
        except ApiError as error:
            if error.status == 400 and "delta token" in (error.api_message or "").lower():
                raise DeltaLinkExpired(
                    self.api.connection,
                    status=error.status,
                    endpoint=error.endpoint,
                    code=error.code,
                    message=error.api_message,
                    correlation_id=error.correlation_id,
                ) from None
            raise
        while True:
            values = page.data["value"]
            records = [v for v in values if not is_deleted_entity(v)]
            deleted = [str(v["id"]) for v in values if is_deleted_entity(v)]
            next_link = page.data.get("@odata.nextLink")
            yield ChangePage(records, deleted, None if next_link else page.data.get("@odata.deltaLink"))
            if not next_link:
                return
            page = await self._get(next_link, endpoint, None, prefer)

    async def attribute(self, entity_set: str, column: str) -> dict[str, Any] | None:
        """A column's definition from the table's metadata (``LogicalName``, ``AttributeType``,
        ``IsCustomAttribute``), or None when the table has no such column."""
        table = literal(logical_name(entity_set))
        url = f"EntityDefinitions(LogicalName={table})/Attributes(LogicalName={literal(name(column))})"
        try:
            # only base AttributeMetadata properties: a derived one (MaxLength) needs a cast segment to select
            page = await self._get(url, "GET /EntityDefinitions({table})/Attributes({column})",
                                   {"$select": "LogicalName,AttributeType,IsCustomAttribute"})
        except NotFoundError:
            return None
        return page.data

    async def find(self, obj: str, field: str, values: Sequence[str]) -> dict[str, str]:
        """Lower-cased value of ``field`` -> the id of a row holding it, among ``values`` (a write in doubt is
        looked for before it is sent again): one query per 100 values."""
        out: dict[str, str] = {}
        wanted = list(dict.fromkeys(v for v in values if v))
        key = primary_key(obj)
        for start in range(0, len(wanted), FIND_MAX):
            chunk = one_of(field, wanted[start : start + FIND_MAX])
            async for rows in self.iter_pages(obj, [key, field], filter=chunk):
                for row in rows:
                    if row.get(field):
                        out.setdefault(str(row[field]).lower(), str(row[key]))
        return out

    # -- writes (the shared verbs, ``crm.outcomes.Writer``) -----------------------------------------------
    async def create(self, obj: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        return await self.write("create", obj, [{"record": r} for r in records])

    async def update(self, obj: str, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[WriteOutcome]:
        return await self.write("update", obj, [{"id": i, "record": r} for i, r in updates])

    async def upsert(self, obj: str, key_field: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        """By the entity's primary key (the row's GUID) or by an alternate key column."""
        by_id = key_field == primary_key(obj)
        inputs = []
        for r in records:
            rest = {k: v for k, v in r.items() if k != key_field}
            where = {"id": r[key_field]} if by_id else {"key": {key_field: r[key_field]}}
            inputs.append({**where, "record": rest})
        return await self.write("upsert", obj, inputs)

    async def delete(self, obj: str, ids: Sequence[str]) -> list[WriteOutcome]:
        return await self.write("delete", obj, [{"id": i} for i in ids])

    async def write(self, operation: str, entity_set: str, inputs: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        """create / update / upsert / delete through ``$batch``, one outcome per input, in input order."""
        return await BatchWriter(self).write(operation, entity_set, inputs)

    async def close_opportunities(self, closes: Sequence[tuple[str, bool]]) -> list[WriteOutcome]:
        """Close each opportunity ``(id, won)`` as won or lost by ``WinOpportunity`` / ``LoseOpportunity``
        (DEAL-4: Dataverse refuses Won and Lost as written values), through ``$batch``; one outcome per input,
        in input order. See :mod:`crm_pipelines.crm.dynamics.close`."""
        return await close.close_opportunities(self, closes)

    async def send_batch(self, requests: list[batch.BatchRequest], attempts: int = 5) -> list[batch.BatchAnswer]:
        """One ``$batch`` call. An answer cut short is sent again: every request in it is idempotent (creates
        carry their own GUID), and the platform may or may not have run it."""
        for attempt in range(1, attempts + 1):
            content_type, body = batch.encode(requests)
            response = await self.api.request(
                "POST",
                "$batch",
                endpoint="POST /$batch",
                content=body,
                headers={**_ODATA_HEADERS, "Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                expect_json=False,
            )
            try:
                return batch.decode(response.headers.get("Content-Type", ""), response.content)
            except batch.MalformedBatch:
                if attempt == attempts:
                    raise
                await self.api.sleep(min(0.2 * 2**attempt, 5.0))
        raise AssertionError("unreachable")


def _order_item(text: str) -> str:
    column, _, direction = text.partition(" ")
    direction = direction.strip().lower() or "asc"
    if direction not in ("asc", "desc"):
        raise ValueError(f"bad $orderby direction in {text!r}")
    return f"{name(column)} {direction}"

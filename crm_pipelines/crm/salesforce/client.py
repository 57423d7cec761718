"""Salesforce reads over the REST API: SOQL query/queryAll with ``nextRecordsUrl``, Bulk API 2.0 query jobs for
large reads, ``SystemModstamp`` windows, deletions, describe and limits. Writes live in ``collections.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import ApiError, ConflictError, NotFoundError
from crm_pipelines.crm.http import ApiResponse, verify_option
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.outcomes import WriteOutcome
from crm_pipelines.crm.ratelimit import RateLimits
from crm_pipelines.crm.salesforce.api import SalesforceApi
from crm_pipelines.crm.salesforce.auth import OAuthLogin, SessionToken
from crm_pipelines.crm.salesforce.bulk import BULK_PAGE_RECORDS, bulk_query
from crm_pipelines.crm.salesforce.collections import Operation, save
from crm_pipelines.crm.salesforce.describe import FieldInfo, ObjectInfo, object_info
from crm_pipelines.crm.salesforce.dialect import SALESFORCE_LIMITS, ApiUsage, SalesforceDialect
from crm_pipelines.crm.salesforce.soql import Name, Names, soql
from crm_pipelines.crm.salesforce.values import parse_datetime

FIND_MAX = 200  # values per IN list: the query stays well inside a URL's length

DEFAULT_VERSION = "62.0"
QUERY_BATCH_MAX = 2_000  # records per query/queryAll batch, the default and the maximum (FACTS §5)
MODIFIED_FIELD = "SystemModstamp"  # changes by users *and* by the system (FACTS §7: what getUpdated uses)
DELETED_DAYS = 15  # getDeleted reaches back this far (FACTS §7); older windows go through queryAll
# A Composite request (POST /composite) counts as ONE call toward the org's limits and holds at most 5 query
# subrequests (resources-composite-composite-post.html): count_windows sends its COUNT() queries 5 a call.
COMPOSITE_QUERIES_MAX = 5
COMPOSITE_ENDPOINT = "POST /services/data/vXX.X/composite"

SalesforceAuth = SessionToken | OAuthLogin


class SalesforceClient:
    def __init__(
        self,
        connection: str,
        auth: SalesforceAuth,
        *,
        api_version: str = DEFAULT_VERSION,
        budget: CallBudget | None = None,
        meter: Meter | None = None,
        ca_bundle: str | None = None,
        limits: RateLimits = SALESFORCE_LIMITS,
        **client_options: Any,
    ) -> None:
        self.auth, self.version = auth, api_version
        self.dialect = SalesforceDialect()
        # The instance URL is known only after login; requests carry absolute URLs built from it.
        placeholder = getattr(auth, "instance_url", None) or getattr(auth, "token_url", "https://localhost")
        self.api = SalesforceApi(
            connection,
            placeholder,
            dialect=self.dialect,
            auth=auth,
            limits=limits,
            budget=budget,
            meter=meter,
            verify=verify_option(ca_bundle),
            **client_options,
        )
        self._described: dict[str, ObjectInfo] = {}

    @property
    def connection(self) -> str:
        return self.api.connection

    async def __aenter__(self) -> SalesforceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.aclose()

    # -- plumbing ------------------------------------------------------------------------------------
    async def url(self, path: str) -> str:
        """``/services/data/vXX.X/…`` paths as given; others relative to the API version's root."""
        instance = await self.auth.ensure(self.api)  # a login is a call through the retry loop too
        if not path.startswith("/services/"):
            path = f"/services/data/v{self.version}/{path.lstrip('/')}"
        return instance + path

    async def call(self, method: str, path: str, endpoint: str, **kwargs: Any) -> ApiResponse:
        return await self.api.request(method, await self.url(path), endpoint=endpoint, **kwargs)

    @property
    def usage(self) -> ApiUsage:
        """The org's 24 h usage as the last response's ``Sforce-Limit-Info`` reported it."""
        return self.dialect.usage

    # -- query ---------------------------------------------------------------------------------------
    async def iter_query(self, query: str, *, include_deleted: bool = False) -> AsyncIterator[list[dict[str, Any]]]:
        """Every record of a SOQL query (built with ``soql()``), a batch of up to 2,000 at a time."""
        resource = "queryAll" if include_deleted else "query"
        page = await self.call(
            "GET",
            resource,
            f"GET /services/data/vXX.X/{resource}",
            params={"q": query},
            headers={"Sforce-Query-Options": f"batchSize={QUERY_BATCH_MAX}"},
        )
        while True:
            yield page.data["records"]
            next_url = page.data.get("nextRecordsUrl")
            if page.data.get("done", True) or not next_url:
                return
            page = await self.call(
                "GET",
                next_url,
                f"GET /services/data/vXX.X/{resource}/{{locator}}",
                headers={"Sforce-Query-Options": f"batchSize={QUERY_BATCH_MAX}"},
            )

    async def count(self, query: str, *, include_deleted: bool = False) -> int:
        """``totalSize`` of a ``SELECT COUNT() …`` query."""
        resource = "queryAll" if include_deleted else "query"
        page = await self.call("GET", resource, f"GET /services/data/vXX.X/{resource}", params={"q": query})
        return int(page.data["totalSize"])

    async def iter_bulk(
        self,
        query: str,
        fields: Mapping[str, FieldInfo],
        *,
        include_deleted: bool = False,
        max_records: int = BULK_PAGE_RECORDS,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A SOQL query as a Bulk API 2.0 query job: records typed as the REST API would give them."""
        async for page in bulk_query(self, query, fields, include_deleted=include_deleted, max_records=max_records):
            yield page

    # -- windows, deletions --------------------------------------------------------------------------
    @staticmethod
    def window_query(obj: str, fields: Sequence[str], start: dt.datetime, end: dt.datetime) -> str:
        return soql(
            "SELECT {fields} FROM {obj} WHERE {modified} >= {start} AND {modified} < {end}",
            fields=Names(fields),
            obj=Name(obj),
            modified=Name(MODIFIED_FIELD),
            start=start,
            end=end,
        )

    async def count_window(self, obj: str, start: dt.datetime, end: dt.datetime) -> int:
        return await self.count(self.count_window_query(obj, start, end))

    @staticmethod
    def count_window_query(obj: str, start: dt.datetime, end: dt.datetime) -> str:
        """The ``SELECT COUNT()`` of ``count_window``: records whose ``SystemModstamp`` lies in [start, end)."""
        return soql(
            "SELECT COUNT() FROM {obj} WHERE {modified} >= {start} AND {modified} < {end}",
            obj=Name(obj),
            modified=Name(MODIFIED_FIELD),
            start=start,
            end=end,
        )

    async def count_windows(self, windows: Mapping[str, tuple[dt.datetime, dt.datetime]]) -> dict[str, int]:
        """``count_window`` for several objects at once (issue 14, OPS-2): the same COUNT() queries, sent as
        Composite requests of up to five query subrequests each, every request one metered call (six objects
        take two calls instead of six). A subrequest's failure is raised as the ``ApiError`` its query would
        have raised alone (``NotFoundError`` for a 404, ``ConflictError`` for a 409)."""
        names = list(windows)
        counts: dict[str, int] = {}
        for offset in range(0, len(names), COMPOSITE_QUERIES_MAX):
            chunk = names[offset : offset + COMPOSITE_QUERIES_MAX]
            # referenceIds allow letters, digits and underscores only: named by position, not by object.
            subrequests = [
                {
                    "method": "GET",
                    "url": f"/services/data/v{self.version}/query/?"
                    + urlencode({"q": self.count_window_query(obj, *windows[obj])}),
                    "referenceId": f"count_{offset + i}",
                }
                for i, obj in enumerate(chunk)
            ]
            response = await self.call(
                "POST",
                "composite/",
                COMPOSITE_ENDPOINT,
                json={"allOrNone": False, "compositeRequest": subrequests},
                idempotent=True,  # reads only: the read timeout, and a retry is harmless
            )
            results = {r.get("referenceId"): r for r in (response.data or {}).get("compositeResponse", [])}
            for sub, obj in zip(subrequests, chunk, strict=True):
                result = results.get(sub["referenceId"])
                if result is None:
                    raise ApiError(self.connection, status=200, endpoint=COMPOSITE_ENDPOINT, code=None,
                                   message=f"no result for the COUNT() of {obj} in the composite response")
                status = int(result.get("httpStatusCode", 0))
                if status >= 400:
                    raise self._subrequest_error(obj, status, result.get("body"))
                counts[obj] = int(result["body"]["totalSize"])
        return counts

    def _subrequest_error(self, obj: str, status: int, body: Any) -> ApiError:
        """A failed composite subrequest as the typed error the same request would raise on its own."""
        code, message = None, str(body)[:500]
        if isinstance(body, list) and body and isinstance(body[0], dict):  # Salesforce's error list (FACTS §3)
            code = body[0].get("errorCode") or body[0].get("statusCode")
            message = str(body[0].get("message", ""))
        kind = {404: NotFoundError, 409: ConflictError}.get(status, ApiError)
        return kind(
            self.connection,
            status=status,
            endpoint="GET /services/data/vXX.X/query (composite subrequest)",
            code=code,
            message=self.api.redact(f"{obj}: {message}"),
        )

    async def iter_window(
        self, obj: str, fields: Sequence[str], start: dt.datetime, end: dt.datetime, *, bulk: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Records whose ``SystemModstamp`` lies in [start, end): REST query, or a bulk job for big windows."""
        query = self.window_query(obj, fields, start, end)
        pages = self.iter_bulk(query, (await self.describe(obj)).fields) if bulk else self.iter_query(query)
        async for page in pages:
            yield page

    async def iter_deleted(
        self, obj: str, since: dt.datetime, until: dt.datetime | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Records in the recycle bin deleted at or after ``since``, through queryAll (any window length).

        A deletion stamps ``SystemModstamp``, so it is the deletion time of a deleted row.
        """
        template = "SELECT Id, {modified} FROM {obj} WHERE IsDeleted = true AND {modified} >= {since}"
        values: dict[str, Any] = {"obj": Name(obj), "modified": Name(MODIFIED_FIELD), "since": since}
        if until is not None:
            template += " AND {modified} < {until}"
            values["until"] = until
        async for page in self.iter_query(soql(template, **values), include_deleted=True):
            yield page

    async def get_deleted(self, obj: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        """getDeleted: ``{"deletedRecords": [{"id", "deletedDate"}], "earliestDateAvailable", "latestDateCovered"}``.

        Only the last 15 days are served (FACTS §7); seconds of start and end are ignored, so the window
        is widened to whole minutes.
        """
        return (
            await self.call(
                "GET",
                f"sobjects/{Name(obj)}/deleted/",
                "GET /services/data/vXX.X/sobjects/{type}/deleted",
                params=_replication_window(start, end),
            )
        ).data

    async def get_updated(self, obj: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        """getUpdated: ``{"ids": [...], "latestDateCovered"}`` (last 30 days only, FACTS §7)."""
        return (
            await self.call(
                "GET",
                f"sobjects/{Name(obj)}/updated/",
                "GET /services/data/vXX.X/sobjects/{type}/updated",
                params=_replication_window(start, end),
            )
        ).data

    # -- metadata ------------------------------------------------------------------------------------
    async def describe(self, obj: str, *, refresh: bool = False) -> ObjectInfo:
        """Fields (types, lengths, picklists), record types; cached per client (one call per object)."""
        if refresh or obj not in self._described:
            response = await self.call(
                "GET", f"sobjects/{Name(obj)}/describe", "GET /services/data/vXX.X/sobjects/{type}/describe"
            )
            self._described[obj] = object_info(response.data)
        return self._described[obj]

    async def state_country_picklists(self) -> bool:
        """Whether the org uses state and country picklists (CON-10), read from Account's describe."""
        return (await self.describe("Account")).state_country_picklists

    # -- writes --------------------------------------------------------------------------------------
    async def save(
        self,
        operation: Operation,
        obj: str,
        records: Sequence[dict[str, Any]],
        *,
        external_id_field: str | None = None,
        truncate: bool = True,
    ) -> list[WriteOutcome]:
        """Collections in chunks of 200 with per-record outcomes in input order (see ``collections.save``)."""
        return await save(self, operation, obj, records, external_id_field=external_id_field, truncate=truncate)

    # the shared verbs (``crm.outcomes.Writer``)
    async def find(self, obj: str, field: str, values: Sequence[str]) -> dict[str, str]:
        """Lower-cased value of ``field`` -> the id of a record holding it, among ``values`` (a write in doubt
        is looked for before it is sent again): one query per 200 values."""
        out: dict[str, str] = {}
        wanted = list(dict.fromkeys(v for v in values if v))
        for start in range(0, len(wanted), FIND_MAX):
            query = soql("SELECT Id, {field} FROM {obj} WHERE {field} IN {values}", field=Name(field), obj=Name(obj),
                         values=wanted[start : start + FIND_MAX])
            async for records in self.iter_query(query):
                for record in records:
                    if record.get(field):
                        out.setdefault(str(record[field]).lower(), str(record["Id"]))
        return out

    async def contact_roles(self, opportunity_ids: Sequence[str]) -> set[tuple[str, str]]:
        """(OpportunityId, ContactId) of every contact role of these Opportunities (a role has no external-id
        field: one in doubt is looked for by its pair): one query per 200 Opportunities."""
        out: set[tuple[str, str]] = set()
        wanted = list(dict.fromkeys(v for v in opportunity_ids if v))
        for start in range(0, len(wanted), FIND_MAX):
            query = soql("SELECT Id, OpportunityId, ContactId FROM OpportunityContactRole WHERE OpportunityId IN "
                         "{values}", values=wanted[start : start + FIND_MAX])
            async for records in self.iter_query(query):
                out |= {(str(r["OpportunityId"]), str(r["ContactId"])) for r in records}
        return out

    async def create(self, obj: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        return await self.save("create", obj, records)

    async def update(self, obj: str, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[WriteOutcome]:
        return await self.save("update", obj, [{**r, "Id": i} for i, r in updates])

    async def upsert(self, obj: str, key_field: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        return await self.save("upsert", obj, records, external_id_field=key_field)

    async def delete(self, obj: str, ids: Sequence[str]) -> list[WriteOutcome]:
        return await self.save("delete", obj, [{"Id": i} for i in ids])

    async def limits(self) -> dict[str, dict[str, Any]]:
        """``/limits``: ``{"DailyApiRequests": {"Max", "Remaining"}, …}`` — the org's usage read back."""
        return (await self.call("GET", "limits/", "GET /services/data/vXX.X/limits")).data


def _replication_window(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    floor = start.astimezone(dt.UTC).replace(second=0, microsecond=0)
    ceil = end.astimezone(dt.UTC).replace(second=0, microsecond=0)
    if ceil < end:
        ceil += dt.timedelta(minutes=1)
    if ceil - floor < dt.timedelta(minutes=1):  # the API wants more than one minute between them
        ceil = floor + dt.timedelta(minutes=2)
    return {"start": floor.isoformat(), "end": ceil.isoformat()}


def modified_at(record: Mapping[str, Any]) -> dt.datetime | None:
    return parse_datetime(record.get(MODIFIED_FIELD))

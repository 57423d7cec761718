"""HubSpot objects as extraction sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from crm_pipelines.crm.hubspot.client import ASSOCIATION_BATCH_READ_MAX, HubSpotClient
from crm_pipelines.crm.hubspot.inline_associations import inline_targets
from crm_pipelines.extract.sources import AssociationBatch, Deletion, with_fields
from crm_pipelines.state.mirror import MirrorRow

PROPERTIES = {
    "contacts": [
        "email",
        "firstname",
        "lastname",
        "phone",
        "jobtitle",
        "company",
        "city",
        "state",
        "country",
        "lifecyclestage",
        "hubspot_owner_id",
        "createdate",
        "lastmodifieddate",
        # ROLL-1: HubSpot's own calculated rollups, compared with ours by the rollup drift check
        "num_associated_deals",
        "first_deal_created_date",
        "recent_deal_close_date",
        "recent_deal_amount",
        "total_revenue",
    ],
    "companies": [
        "name",
        "domain",
        "website",
        "phone",
        "city",
        "state",
        "country",
        "industry",
        "numberofemployees",
        "annualrevenue",
        "hubspot_owner_id",
        "lifecyclestage",  # COM-4 writes it: read back, or the plan would keep writing it
        "createdate",
        "hs_lastmodifieddate",
    ],
    "deals": [
        "dealname",
        "amount",
        "pipeline",
        "dealstage",
        "closedate",
        "dealtype",
        "description",
        "hubspot_owner_id",
        "deal_currency_code",
        "createdate",
        "hs_lastmodifieddate",
        "hs_is_closed_won",
        "hs_is_closed",
    ],
    # OPS-4: tasks sync with the records they are associated with
    "tasks": [
        "hs_task_subject",
        "hs_task_body",
        "hs_task_status",
        "hs_task_priority",
        "hs_task_type",
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
}
# associations carried (DEAL-6, TOP-1, OPS-4), read for the records each window brings
ASSOCIATIONS = {"contacts": ("companies",), "deals": ("contacts", "companies"), "tasks": ("contacts", "deals")}
# A window is read through both rate buckets (list + search, issue 17) when, past its first search page, it
# holds at least this many records (ten search pages: below that the list adds under two seconds) and at
# least this share of all the object's records (the list cannot filter: it reads its whole part of the id
# space, and every call it makes counts against the 24 h budget, OPS-2). Incremental windows stay on search.
BOTH_BUCKETS_MIN_RECORDS = 2_000
BOTH_BUCKETS_MIN_SHARE = 0.5


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 24 * 3600 * 1000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def _row(record: dict[str, Any]) -> MirrorRow:
    return MirrorRow(str(record["id"]), _parse(record.get("updatedAt")), record)


# the objects whose fields the sync merges with another CRM's, and properties no person edits
HISTORY_OBJECTS = ("contacts", "companies", "deals")
_NOT_EDITED = {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "num_associated_deals",
               "first_deal_created_date", "recent_deal_close_date", "recent_deal_amount", "total_revenue"}


class HubSpotObject:
    partitioned = True
    crm = "hubspot"

    def __init__(self, client: HubSpotClient, obj: str, extra: tuple[str, ...] = ()) -> None:
        self.client, self.obj = client, obj
        self.properties = with_fields(PROPERTIES[self.obj], extra)
        # association batches read and not yet taken: (id prefixes re-read whole, their association rows)
        self._associations: list[AssociationBatch] = []
        self._counted: tuple[datetime, datetime, int] | None = None  # the last window read, with its total
        # Incremental runs read when each property last changed (property history): the conflict rules
        # compare field change times (CONF-1/2). One batch read per 50 records, on the 10-second bucket; the
        # bulk import skips it (a first sync merges by record times).
        self.history = False

    def take_associations(self) -> list[AssociationBatch]:
        """Association batches read so far, for the caller to write; each is handed out once."""
        taken, self._associations = self._associations, []
        return taken

    async def read_window(self, start: datetime, end: datetime) -> AsyncIterator[list[MirrorRow]]:
        """Search pages as they come, or, for a window holding most of the records (the bulk import), pages of
        the list endpoint and search read together (issue 17); association reads (on the 10-second bucket)
        run alongside instead of pausing the reads."""
        self._counted = None

        def counted(total: int) -> None:
            self._counted = (start, end, total)

        pending: list[str] = []
        reads: list[asyncio.Task[None]] = []
        try:
            async for page in self._pages(start, end, counted):
                pending += self._take_inline_associations(page)
                # full batches only: the ids past a full batch wait for the next pages, else each batch would
                # be split into a full call and a small one (1,100 ids: two calls on the 10-second bucket)
                while len(pending) >= ASSOCIATION_BATCH_READ_MAX:
                    batch, pending = pending[:ASSOCIATION_BATCH_READ_MAX], pending[ASSOCIATION_BATCH_READ_MAX:]
                    reads.append(asyncio.create_task(self._read_associations(batch)))
                if self.history and self.obj in HISTORY_OBJECTS:
                    await self._add_property_times(page)
                yield [_row(r) for r in page]
            reads.append(asyncio.create_task(self._read_associations(pending)))
            await asyncio.gather(*reads)
        finally:
            for read in reads:
                read.cancel()

    async def _pages(
        self, start: datetime, end: datetime, counted: Callable[[int], None]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The window's records: its first search page (which also counts the window, for OPS-7), then the
        rest through search alone or, when worth it, through both buckets."""
        start_ms, end_ms = _ms(start), _ms(end)
        totals: list[int] = []

        def total(n: int) -> None:
            totals.append(n)
            counted(n)

        searched = self.client.iter_modified(self.obj, start_ms, end_ms, self.properties, on_total=total)
        try:
            first = await anext(searched, None)
            if first is None:
                return
            yield first
            if not await self._both_buckets_worth_it(start, end, totals[0] - len(first)):
                async for page in searched:
                    yield page
                return
        finally:
            await searched.aclose()
        seen = {r["id"] for r in first}
        linked = ASSOCIATIONS.get(self.obj, ())
        async for page in self.client.iter_full(self.obj, self.properties, (start_ms, end_ms), associations=linked):
            fresh = [r for r in page if r["id"] not in seen]
            if fresh:
                yield fresh

    async def _both_buckets_worth_it(self, start: datetime, end: datetime, left: int) -> bool:
        if left < BOTH_BUCKETS_MIN_RECORDS:
            return False
        if start <= _EPOCH and end >= datetime.now(UTC):
            return True  # the whole history: every record is in the window
        everything = await self.client.count_modified(self.obj, 0, _ms(datetime.now(UTC)) + _DAY_MS)
        return left >= BOTH_BUCKETS_MIN_SHARE * everything

    async def _add_property_times(self, page: list[dict[str, Any]]) -> None:
        """Each record gets ``propertyTimes``: property -> when it last changed (kept in the mirror beside
        the record as the API returned it)."""
        watched = [p for p in self.properties if p not in _NOT_EDITED]
        times = await self.client.property_times(self.obj, [str(r["id"]) for r in page], watched)
        for record in page:
            record["propertyTimes"] = times.get(str(record["id"]), {})

    def _take_inline_associations(self, page: list[dict[str, Any]]) -> list[str]:
        """Keeps the associations the list endpoint gave inline where complete (``inline_associations``, issue
        17: no batch read on the 10-second bucket for them); returns the ids whose associations are still to
        read. The inline block never reaches the mirror's record."""
        to_types = ASSOCIATIONS.get(self.obj, ())
        unread, taken, rows = [], [], []
        for record in page:
            listed = record.pop("associations", None)
            found = {to: inline_targets(listed, self.obj, to) for to in to_types} if listed is not None else {}
            if not to_types or listed is None or any(targets is None for targets in found.values()):
                unread.append(str(record["id"]))
                continue
            taken.append(str(record["id"]))
            for to_type, targets in found.items():
                rows += self._association_rows(str(record["id"]), to_type, targets or [])
        if taken:
            groups = [f"{self.obj}:{i}:{to}:" for i in taken for to in to_types]
            self._associations.append(AssociationBatch(groups, rows))
        return unread

    async def _read_associations(self, ids: list[str]) -> None:
        for to_type in ASSOCIATIONS.get(self.obj, ()) if ids else ():
            linked = await self.client.associations(self.obj, to_type, ids)
            rows = [r for from_id, targets in linked.items() for r in self._association_rows(from_id, to_type, targets)]
            self._associations.append(AssociationBatch([f"{self.obj}:{i}:{to_type}:" for i in ids], rows))

    def _association_rows(self, from_id: str, to_type: str, targets: list[dict[str, Any]]) -> list[MirrorRow]:
        """One mirror row per association type of each target, as the v4 batch read gives them."""
        rows = []
        for target in targets:
            for kind in target.get("associationTypes", []):
                row = {
                    "from_type": self.obj,
                    "from_id": from_id,
                    "to_type": to_type,
                    "to_id": str(target["toObjectId"]),
                    "type_id": kind.get("typeId"),
                    "category": kind.get("category"),
                    "label": kind.get("label"),
                }
                rows.append(MirrorRow(f"{self.obj}:{from_id}:{to_type}:{row['to_id']}:{row['type_id']}", None, row))
        return rows

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        if self._counted and self._counted[:2] == (start, end):
            return self._counted[2]  # the search that read this window counted it already
        return await self.client.count_modified(self.obj, _ms(start), _ms(end))

    async def deleted_since(self, since: datetime) -> list[Deletion]:
        # DEL-5: archived records leave search; they are swept on their own cursor
        return [
            Deletion(str(r["id"]), _parse(r.get("archivedAt")))
            async for page in self.client.iter_archived_since(self.obj, _ms(since))
            for r in page
        ]


class HubSpotReference:
    """Pipelines and owners: small, read whole on every run."""

    partitioned = False
    crm = "hubspot"

    def __init__(self, client: HubSpotClient, obj: str) -> None:
        self.client, self.obj = client, obj

    async def read_window(self, start: datetime, end: datetime) -> AsyncIterator[list[MirrorRow]]:
        now = datetime.now(UTC)
        if self.obj == "pipelines":
            rows = [
                MirrorRow(f"deals:{p['id']}", _parse(p.get("updatedAt")) or now, p)
                for p in await self.client.pipelines("deals")
            ]
        else:
            rows = [MirrorRow(str(o["id"]), _parse(o.get("updatedAt")) or now, o) for o in await self.client.owners()]
        yield rows

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        return None

    async def deleted_since(self, since: datetime) -> list[Deletion]:
        return []

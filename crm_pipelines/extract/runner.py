"""One extraction: a window of an object's changes into its mirror, deletions flagged, cursors moved."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from crm_pipelines.extract.sources import AssociationBatch, ObjectSource
from crm_pipelines.state import mirror
from crm_pipelines.state.cursors import get_cursor, set_cursor

# Search indexes trail writes (HubSpot says "a few moments"): incremental reads start this far before the
# cursor, so a change indexed late is still read. Re-reading a record is harmless (upsert by id).
SAFETY_LAG = timedelta(minutes=5)
INCREMENTAL = "modified_through"
DELETIONS = "deleted_through"


@dataclass
class ExtractResult:
    crm: str
    obj: str
    start: datetime
    end: datetime
    read: int = 0
    upserted: int = 0
    deleted: int = 0
    associations: int = 0
    crm_count: int | None = None  # the CRM's own count for the window (OPS-7)
    mirror_count: int | None = None  # live mirror rows in the window afterwards
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool | None:
        if self.crm_count is None or self.mirror_count is None:
            return None
        return self.mirror_count >= self.crm_count


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def extract(
    source: ObjectSource,
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    incremental: bool = False,
    sweep_deletions: bool = True,
    now: datetime | None = None,
) -> ExtractResult:
    """Read records modified in [start, end) and upsert them; with ``incremental`` the window starts at the
    object's cursor (less the safety lag) when that is later than ``start``, and ends now."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    connection = source.crm
    if incremental:
        cursor = get_cursor(engine, connection, source.obj, INCREMENTAL)
        if cursor:
            start = max(start, datetime.fromisoformat(cursor) - SAFETY_LAG)
        end = min(end, now)
    result = ExtractResult(source.crm, source.obj, start, end)
    if not source.partitioned:
        start, end = datetime(1970, 1, 1, tzinfo=UTC), now
    # Each page is written while the next is fetched (one write in flight, in a worker thread), so the
    # mirror's write time hides behind the API's pacing instead of adding to it.
    writing: asyncio.Future[tuple[int, int]] | None = None

    def write(page: list[mirror.MirrorRow], links: list[AssociationBatch]) -> tuple[int, int]:
        linked = sum(mirror.replace_groups(engine, source.crm, "associations", b.groups, b.rows) for b in links)
        return mirror.upsert_rows(engine, source.crm, source.obj, page), linked

    async def written() -> None:
        nonlocal writing
        if writing is not None:
            upserted, linked = await writing
            result.upserted, result.associations = result.upserted + upserted, result.associations + linked
            writing = None

    take_links = getattr(source, "take_associations", list)
    sweeping: asyncio.Future[list] | None = None

    def sweep() -> asyncio.Future[list]:
        since_text = get_cursor(engine, connection, source.obj, DELETIONS)
        since = datetime.fromisoformat(since_text) - SAFETY_LAG if since_text else datetime(1970, 1, 1, tzinfo=UTC)
        return asyncio.ensure_future(source.deleted_since(since))

    if sweep_deletions and source.partitioned and incremental:
        # a sync run's sweep is asked while its few pages are read, not after them (one API round trip per object
        # less on a change's latency); applied after the pages, so a record read, then deleted, ends deleted. An
        # import's sweep keeps to after its reads: its pages are paced to the rate buckets it has to itself
        sweeping = sweep()
    try:
        async for page in source.read_window(start, end):
            result.read += len(page)
            await written()
            writing = asyncio.ensure_future(asyncio.to_thread(write, page, take_links()))
    except BaseException:
        if sweeping is not None:  # the read's error is the one reported; the sweep's, if any, is dropped with it
            sweeping.cancel()
            if sweeping.done() and not sweeping.cancelled():
                sweeping.exception()
        raise
    finally:
        await written()  # a page already read is kept even when a later call fails
    if links := take_links():  # the associations of the last records, read after their page
        result.associations += (await asyncio.to_thread(write, [], links))[1]
    if sweep_deletions and source.partitioned:
        deletions = await (sweeping or sweep())
        result.deleted = mirror.mark_deleted(engine, source.crm, source.obj, [(d.id, d.deleted_at) for d in deletions])
        set_cursor(engine, connection, source.obj, DELETIONS, _iso(now))
    if source.partitioned:
        result.crm_count = await source.count_window(start, end)
        result.mirror_count = mirror.count_live_in_window(engine, source.crm, source.obj, start, end)
        if incremental or end >= now:
            # everything modified before ``through`` is in the mirror; never a time in the future
            through = min(end, now)
            previous = get_cursor(engine, connection, source.obj, INCREMENTAL)
            if previous is None or datetime.fromisoformat(previous) < through:
                set_cursor(engine, connection, source.obj, INCREMENTAL, _iso(through))
    result.seconds = time.perf_counter() - started
    return result

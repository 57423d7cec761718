"""A full HubSpot read on both of the API's rate buckets at once (issue 17, OPS-1).

Search has its own bucket (5 calls/s, 200 records a call) and is exempt from the 10-second bucket, on which
the list endpoint reads 100 records a call (190 calls per 10 s on Professional) (FACTS §2, §4). Reading
through one of them leaves the other idle, so the read walks the id space from both ends:

- the list endpoint from the lowest id upwards with its ``after`` cursor (it returns records in id order);
- search from the highest id downwards, keyset-paged on ``hs_object_id`` (``hs_object_id < lowest seen``,
  newest id first), so it never meets search's 10,000-result cap and needs no offset.

Each walker runs at its own bucket's pace, and they stop where they meet. That point needs no count and no
knowledge of how ids are spread: both finish together by construction, whatever the buckets' shares turn out
to be (a write-back on the same connection slows the list walker down; search then covers more ids).

Each record is yielded exactly once. The list walker keeps the records below the lowest id search has
yielded, search keeps those above the highest id the list has yielded; both decisions are taken when a page
arrives, between awaits, so neither can change under the other. A walker stops once its page reaches the
other's frontier. Should the list endpoint ever return ids out of order, the list walker stops where its
pages were last in order (it covered every id up to there) and search reads the rest alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

Page = list[dict[str, Any]]
SearchCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
ListPages = Callable[[str, Sequence[str]], AsyncGenerator[Page, None]]

SEARCH_PAGE_MAX = 200  # FACTS §2
# Pages read ahead of the consumer: enough that a slow consumer does not stall either walker at once,
# few enough that memory stays a few pages.
QUEUE_PAGES = 16


class _Frontier:
    """How far each walker has read: the list up to ``list_high``, search down to ``search_low``."""

    def __init__(self) -> None:
        self.list_high = -1
        self.search_low: float = math.inf

    def crossed(self) -> bool:
        return self.list_high >= self.search_low


async def iter_both_buckets(
    object_type: str,
    properties: Sequence[str],
    *,
    list_pages: ListPages,
    search: SearchCall,
    search_filters: Sequence[dict[str, str]] = (),
    wanted: Callable[[dict[str, Any]], bool] | None = None,
    list_pace: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIterator[Page]:
    """Every live record of ``object_type``, in pages, read by the list endpoint and search together.

    A window of the records: ``search_filters`` are added to every search, and ``wanted`` tells which of
    the list's records (it cannot filter) are kept; the two must select the same records. ``list_pace`` is
    awaited before each list call (an even pace within the bucket's share).
    """
    frontier = _Frontier()
    # Sentinels and errors never wait (the queue is unbounded); pages wait for one of QUEUE_PAGES slots, so a
    # walker cancelled while the consumer is gone is never stuck on a full queue.
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue()
    slots = asyncio.Semaphore(QUEUE_PAGES)

    # A walker still waiting for its turn at the API once the other has crossed it has nothing left to read:
    # it is cancelled rather than left to spend a call (and, on a spent ten-second window, up to 10 s) to find
    # that out. Not while it holds a page it has yet to queue: that page is the only copy of its records.
    tasks: dict[str, asyncio.Task[None]] = {}
    holding: set[str] = set()

    async def put(page: Page, walker: str) -> None:
        holding.add(walker)
        try:
            await slots.acquire()
            queue.put_nowait(page)
        finally:
            holding.discard(walker)

    def stop_other_if_crossed(other: str) -> None:
        if frontier.crossed() and other in tasks and other not in holding:
            tasks[other].cancel()

    async def walk_list() -> None:
        pages = list_pages(object_type, properties)
        try:
            while True:
                if list_pace is not None:
                    await list_pace()
                page = await anext(pages, None)
                if page is None:
                    return
                ids = [int(r["id"]) for r in page]
                if ids != sorted(ids) or (ids and ids[0] <= frontier.list_high):
                    return  # not id order: what came before still covers every id up to list_high
                fresh = [
                    r
                    for r, i in zip(page, ids, strict=True)
                    if i < frontier.search_low and (wanted is None or wanted(r))
                ]
                if ids:
                    frontier.list_high = ids[-1]
                if fresh:
                    await put(fresh, "list")
                if frontier.crossed():
                    stop_other_if_crossed("search")
                    return
        finally:
            await pages.aclose()

    async def walk_search() -> None:
        while not frontier.crossed():
            filters = list(search_filters)
            if frontier.search_low != math.inf:
                filters.append(
                    {"propertyName": "hs_object_id", "operator": "LT", "value": str(int(frontier.search_low))}
                )
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}] if filters else [],
                "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
                "properties": list(properties),
                "limit": SEARCH_PAGE_MAX,
                "after": "0",
            }
            page: Page = (await search(object_type, body))["results"]
            ids = [int(r["id"]) for r in page]
            fresh = [r for r, i in zip(page, ids, strict=True) if i > frontier.list_high]
            if ids:
                frontier.search_low = min(frontier.search_low, ids[-1])
            if fresh:
                await put(fresh, "search")
            stop_other_if_crossed("list")
            if len(page) < SEARCH_PAGE_MAX:
                return  # the lowest id reached

    async def run(walker: Callable[[], Awaitable[None]]) -> None:
        try:
            await walker()
        except asyncio.CancelledError:
            pass  # stopped: by the other walker (nothing left to read) or by the consumer (gone)
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put_nowait(error)
            raise
        finally:
            queue.put_nowait(None)

    tasks.update(list=asyncio.create_task(run(walk_list)), search=asyncio.create_task(run(walk_search)))
    walkers = list(tasks.values())
    done = 0
    try:
        while done < len(walkers):
            item = await queue.get()
            if item is None:
                done += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                slots.release()
                yield item
    finally:
        for walker in walkers:
            walker.cancel()
        await asyncio.gather(*walkers, return_exceptions=True)

"""The reads behind the extract steps: a CRM's objects read in a thread of their own while the step records what
is done, and a run's CRMs read side by side when its steps share one process.

A sync run's steps run in its own process, one after another (``executors.py``), and the extract steps of the
CRMs that changed are independent of each other. Run in turn, their waits on three APIs add up on every change's
latency; so the first of them to run starts the others' reads too, and each later step takes its own reads,
already under way or done, instead of starting them. Each step still records its own objects, so the UI shows the
same steps, materializations and checks either way. A run whose steps may run in other processes (the bulk
import, a backfill on the multiprocess executor) reads each CRM in its own step, as before: nothing would take
the reads started here.

The reads started ahead take their CRM's API before its step takes the connection's pool (``<crm>_api``). The
change sensor asks for such a run only with CRMs no bulk import is reading (``defs/sync/busy.py``), and a sync
run's reads are a few calls per object, paced by each connection's own rate limits.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.extract.metadata import DayTally, TalliedSource
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.extract.catalog import make_source
from crm_pipelines.extract.runner import ExtractResult, extract

Window = tuple[datetime, datetime, bool]  # start, end, incremental


@dataclass
class Extracted:
    """One object's extract: the runner's result, its API calls, and its records counted per partition."""

    result: ExtractResult
    meter: Meter
    tally: DayTally | None = None


@dataclass(frozen=True)
class ReadPlan:
    """What one CRM's step reads: its objects (in order), the window, and the run's partitions."""

    crm: str
    objects: tuple[str, ...]
    window: Window
    partition_keys: tuple[str, ...]
    in_parallel: int = 1
    extra: Mapping[str, tuple[str, ...]] | None = None  # object -> fields the settings name on it


async def _extract_one(plan: ReadPlan, obj: str, state: StateDatabase, crm_connections: CrmConnections) -> Extracted:
    start, end, incremental = plan.window
    meter = Meter()  # per object, so each materialization reports its own API calls
    tally = DayTally(plan.partition_keys) if plan.partition_keys else None
    async with crm_connections.client(plan.crm, state, meter) as client:
        source = make_source(plan.crm, client, obj, state.engine(), (plan.extra or {}).get(obj, ()))
        if incremental and hasattr(source, "history"):
            source.history = True  # field change times, for the conflict rules (only a short window's records)
        counted = TalliedSource(source, tally) if tally else source
        result = await extract(counted, state.engine(), start, end, incremental=incremental)  # type: ignore[arg-type]
        return Extracted(result, meter, tally)


def extract_one(plan: ReadPlan, obj: str, state: StateDatabase, crm_connections: CrmConnections) -> Extracted:
    """One object read now, in this thread (a reference object, read whole)."""
    return asyncio.run(_extract_one(plan, obj, state, crm_connections))


class BackgroundReads:
    """``plan``'s objects read in a thread started at once, ``in_parallel`` at a time (in the order given);
    iterating yields each object's outcome as soon as it is read and written, once."""

    def __init__(self, plan: ReadPlan, state: StateDatabase, crm_connections: CrmConnections) -> None:
        self.plan = plan
        self._done: queue.Queue[tuple[str, Extracted | Exception] | None] = queue.Queue()

        async def read_all() -> None:
            gate = asyncio.Semaphore(max(1, plan.in_parallel))

            async def read_one(obj: str) -> None:
                async with gate:
                    try:
                        outcome: Extracted | Exception = await _extract_one(plan, obj, state, crm_connections)
                    except Exception as error:  # one object failing leaves the others to be read
                        outcome = error
                self._done.put((obj, outcome))

            await asyncio.gather(*(read_one(obj) for obj in plan.objects))

        def run() -> None:
            try:
                asyncio.run(read_all())
            finally:
                self._done.put(None)  # the end, however it came

        # A daemon: when the run is terminated, its reads stop with the process (what was written stays written).
        threading.Thread(target=run, name=f"{plan.crm}-extract", daemon=True).start()

    def __iter__(self) -> Iterator[tuple[str, Extracted | Exception]]:
        while (item := self._done.get()) is not None:
            yield item


class SideBySide:
    """The reads of one process's runs, by run and CRM: the first extract step of a run that shares its process
    starts every CRM's reads; the others take theirs from here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str], BackgroundReads] = {}

    def reads(self, run_id: str, plans: Sequence[ReadPlan], own: str, state: StateDatabase,
              crm_connections: CrmConnections) -> BackgroundReads:
        """The reads of ``own`` (one of ``plans``, each CRM's step in this run): started by an earlier step,
        else started now together with the other plans'."""
        with self._lock:
            mine = self._started.pop((run_id, own), None)
            wanted = next(p for p in plans if p.crm == own)
            if mine is not None and mine.plan == wanted:
                return mine
            # a new run: what an earlier run started and never took is its own (its steps did not run)
            self._started = {k: v for k, v in self._started.items() if k[0] == run_id}
            for plan in plans:
                if plan.crm != own and plan.objects and (run_id, plan.crm) not in self._started:
                    self._started[(run_id, plan.crm)] = BackgroundReads(plan, state, crm_connections)
            return BackgroundReads(wanted, state, crm_connections)

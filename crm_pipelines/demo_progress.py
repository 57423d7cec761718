"""Progress of the demo's bulk import: records in the mirror against what each sandbox holds, per object.

The expected numbers are the sandboxes' own counts (``GET /__sandbox__/stats``, keyed by the API's object
names, as the catalog names them). A thread reads the mirror's counts every ``EVERY_S`` while the import's
runs go; on a terminal it rewrites one line in place, elsewhere (a log, a test) it stays silent and the
caller prints the figures after each run, so a captured output stays short.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

import httpx
from sqlalchemy.engine import Engine

from crm_pipelines import catalog

EVERY_S = 2.0
LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce", "dynamics": "Dynamics"}

Counts = dict[tuple[str, str], int]


def expected_counts(info: dict) -> Counts:
    """Live records per partitioned ``(crm, object)`` in each running sandbox."""
    out: Counts = {}
    for crm in catalog.CRMS:
        stats = httpx.get(f"{info[crm]['base_url']}/__sandbox__/stats", timeout=30, verify=False).json()
        for o in catalog.objects(crm, extracted=True):
            if o.partitioned and o.name in stats:
                out[(crm, o.name)] = int(stats[o.name].get("live", 0))
    return out


def mirror_counts(engine: Engine, keys: list[tuple[str, str]]) -> Counts:
    from crm_pipelines.state import mirror

    return {key: mirror.counts(engine, *key)["live"] for key in keys}


def line_start() -> str:
    """What starts a line printed while ``live_progress`` may have left one of its own: clears it on a terminal."""
    return "\r\033[K" if sys.stdout.isatty() else ""


@contextlib.contextmanager
def live_progress(engine: Engine, expected: Counts, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """While inside, on a terminal: one line rewritten every ``EVERY_S`` with the records fetched so far."""
    if not sys.stdout.isatty():
        yield
        return
    stop = threading.Event()
    write = say or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))

    def loop() -> None:
        while not stop.wait(EVERY_S):
            try:
                done = mirror_counts(engine, list(expected))
            except Exception:  # a count racing the import's own transaction: try at the next tick
                continue
            total, want = sum(done.values()), sum(expected.values())
            per_crm = ", ".join(
                f"{LABELS[c]} {sum(n for (k, _), n in done.items() if k == c):,}" for c in catalog.CRMS
            )
            write(f"\r  fetched {total:,} of {want:,} records ({per_crm})   ")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        write("\r" + " " * 100 + "\r")

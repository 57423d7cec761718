"""``crm-pipelines bench writeback``: the write-back after 1 % of the records are edited across the CRMs, on a
converged sync, with the sandboxes' published rate limits on (issue 13).

Set-up (not measured; the sandboxes' rate limits lifted to keep it short, the connectors still pace
themselves at the published limits): the sandboxes seeded at ``--scale``, the bulk import into a new state
database (``bench unified``'s ``imported``), a full ``unified``, the plans and the writes of a first sync, then
sync cycles until one writes nothing. A sync cycle is what the daemon runs after a change: the change sensor's
tick, the extract runs it requests (side by side), ``unified``, the plans, then the writes of the three CRMs —
all real Dagster runs on one instance, in run workers started beforehand. The writes are one run, the CRMs one
after another (``SIDE_BY_SIDE``: side by side).

Then the rate limits go on, ``EDIT_SHARE`` (1 %) of the live records of every object that syncs (contacts,
leads, companies, deals) are edited in the sandboxes' UIs (``/__sandbox__/ui``, one mapped field each), and
sync cycles run until one writes nothing. The write runs of the cycles that wrote something are measured:

- ``records_written``: records the CRMs confirmed (created + updated + deleted, the write assets' metadata);
  ``records_sent``: records sent, refused ones included (new outbox rows and rows whose attempts grew), of
  which ``records_retried`` were refused before and sent again as their retry came due (OPS-6);
- ``write_calls``: API calls the sandboxes received during the write runs (``/__sandbox__/usage``; look-ups,
  describes and retries included; token requests apart, in ``login_calls``: they go to the identity provider,
  not against the API's limits); ``write_calls_by_crm``, and per endpoint in ``write_calls_by_endpoint``;
- ``write_calls_min`` = sum over rounds, CRMs, objects and operations of ceil(records sent / the API's batch
  size) (HubSpot 100, Salesforce sObject Collections 200, Dataverse ``$batch`` 1,000; ``sync/calls.py``): the
  fewest calls that could have sent them; ``calls_ratio`` = write_calls / write_calls_min (target <= 1.2);
- ``wall_s``: the write runs' time (from launching a cycle's write run to its end, Dagster's run included),
  summed over the cycles; ``write_step_s_by_crm``: each CRM's write step alone;
- ``bound_s`` = sum over cycles of the least time the published limits allow for that cycle's calls: per CRM,
  max over its rate buckets of (calls in the bucket / the bucket's sustained rate), summed over the CRMs as
  their writes go one after another (their maximum if ``SIDE_BY_SIDE``); the rates: HubSpot 190 calls per
  10 s (searches 5 per s, their own bucket), Salesforce its daily allocation of 100,000 per rolling 24 h (it has
  no per-second limit; ``bench connectors`` uses the same), Dataverse 6,000 per 300 s; ``bound_by_crm`` shows
  each; ``time_ratio`` = wall_s / bound_s (target <= 1.3);
- ``duplicates``: records the sync made that share an identity with another live record in their CRM (the same
  email among a CRM's contacts and leads, the same key among its companies or deals), read back through the
  CRMs' APIs after the run (rate limits lifted again for that read); must be 0 (``bench/writeback_records.py``);
- ``failed``: records refused in the measured write runs, with ``failed_reasons`` (``<crm> <object> <code>:
  <text>``: count); ``failed_outstanding`` (and its reasons): every write still refused at the end, the set-up's
  included (OPS-6: each is retried later, backing off);
- ``cycles``: measured cycles that wrote something (HubSpot is the hub: an edit in Salesforce reaches Dynamics
  one cycle after HubSpot), ``written_by_cycle``, ``sent_retried_failed_by_cycle`` ([sent, retried, refused]
  per cycle); ``calls_after_converged``: write calls of the cycle that wrote
  nothing (CONF-5: 0, unless a refused record's retry came due);
- ``not_yet_written``: planned work the write runs report they do not write yet, per CRM, from the last
  measured cycle.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines.bench.plan import _plan_run
from crm_pipelines.bench.unified import (
    Imported,
    _extract_run,
    _sensor_tick,
    _unified_run,
    _warm_workers,
    imported,
)
from crm_pipelines.bench.writeback_measure import (
    CRMS,
    Round,
    calls_between,
    outbox_attempts,
    reasons,
    sent_between,
    set_rate_limits,
    usage,
)
from crm_pipelines.bench.writeback_records import duplicates, edit, seeded_ids
from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
from crm_pipelines.settings import load_settings
from crm_pipelines.state import outbox
from crm_pipelines.state.db import create_state_engine

MOST_CYCLES = 6  # a converged sync carries an edit in at most two; more means it does not converge


# The three write runs may go side by side (each CRM has its own pool; their link updates take turns:
# ``write_run._confirm``), but measured so, the slowest CRM's bound (Salesforce's daily allocation, 0.86 s a call)
# would hide the other two's time. One after another, each CRM's time stands against its own bound.
SIDE_BY_SIDE = False


def _write_run(settings_path: str, home: str | None, crms: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``writeback/<crm>_writes`` of ``crms`` in one Dagster run (one after another), in this (warm) process:
    per CRM, the run's ``seconds``, its write step's ``step_s`` and the write asset's metadata ``meta``."""
    batch_partition_events()
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    started = time.perf_counter()
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([build_plan_assets(), *build_write_assets()], selection=[WRITES[c] for c in crms],
                                instance=instance, resources=resources, tags={"crm_pipelines/kind": "bench"})
    if not result.success:
        raise RuntimeError(f"the write run of {', '.join(crms)} failed")
    seconds = time.perf_counter() - started
    events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    return {crm: {"seconds": seconds, "step_s": sum(s for k, s in steps.items() if f"{crm}_writes" in k),
                  "meta": {k: getattr(v, "value", v) for k, v in events[WRITES[crm]].items()}} for crm in crms}


def _writes(pool: ProcessPoolExecutor, state: Imported, engine: Engine) -> Round:
    """The three CRMs' write runs (``SIDE_BY_SIDE``, or one run), and what they sent and cost."""
    calls_before, outbox_before = usage(state.info), outbox_attempts(engine)
    started = time.perf_counter()
    groups = [(crm,) for crm in CRMS] if SIDE_BY_SIDE else [CRMS]
    runs: dict[str, dict] = {}
    for done in [pool.submit(_write_run, state.settings_path, state.home, crms) for crms in groups]:
        runs.update(done.result())
    wall = time.perf_counter() - started
    calls, logins = calls_between(calls_before, usage(state.info))
    return Round(wall, runs, calls, logins, sent_between(outbox_before, outbox_attempts(engine)), SIDE_BY_SIDE)


def _cycle(pool: ProcessPoolExecutor, state: Imported, engine: Engine) -> Round:
    """A sync cycle as the daemon runs it: the sensor's tick, its extract runs, ``unified``, plans, writes."""
    requests = pool.submit(_sensor_tick, state.settings_path, state.home).result()
    for done in [pool.submit(_extract_run, state.settings_path, state.home, r) for r in requests]:
        done.result()
    pool.submit(_unified_run, state.settings_path, state.home, False).result()
    pool.submit(_plan_run, state.settings_path, state.home).result()
    return _writes(pool, state, engine)


def _say(text: str) -> None:
    """Progress on standard error: a large run takes a while (standard output's last line is the figures)."""
    print(f"bench writeback: {text}", file=sys.stderr, flush=True)


def _until_converged(pool: ProcessPoolExecutor, state: Imported, engine: Engine, phase: str) -> tuple[
        list[Round], Round]:
    """Cycles until one writes nothing: those that wrote, and that last one."""
    wrote = []
    for n in range(1, MOST_CYCLES + 1):
        cycle = _cycle(pool, state, engine)
        _say(f"{phase} cycle {n}: {cycle.written} records written, "
             f"{sum(cycle.calls_of(crm) for crm in CRMS)} write calls, write runs {cycle.wall_s:.1f} s")
        if not cycle.written:
            return wrote, cycle
        wrote.append(cycle)
    raise RuntimeError(f"the sync did not converge in {MOST_CYCLES} cycles: {[c.written for c in wrote]}")


def _summed(rounds: list[Round], key: str) -> dict[str, Any]:
    """Per CRM, a write-run figure summed over ``rounds`` (numbers) or taken from the last (anything else)."""
    out: dict[str, Any] = {}
    for crm in CRMS:
        values = [r.runs[crm]["meta"].get(key) for r in rounds]
        out[crm] = sum(values) if all(isinstance(v, int | float) for v in values) else values[-1] if values else None
    return out


def _figures(rounds: list[Round], last: Round) -> dict[str, Any]:
    sent = pd.concat([r.sent for r in rounds]) if rounds else last.sent.iloc[:0]
    failed = pd.concat([r.failures() for r in rounds]) if rounds else sent
    by_endpoint = {crm: dict(sum((r.calls[crm] for r in rounds), Counter())) for crm in CRMS}
    calls = sum(r.calls_of(crm) for r in rounds for crm in CRMS)
    least = sum(sum(r.least.values()) for r in rounds)
    wall, bound = sum(r.wall_s for r in rounds), sum(r.bound_s for r in rounds)
    return {
        "records_written": sum(r.written for r in rounds),
        "records_written_by_crm": {crm: sum(r.written_to(crm) for r in rounds) for crm in CRMS},
        "records_sent": len(sent),
        "records_retried": sum(r.retried for r in rounds),
        "write_calls": calls,
        "write_calls_min": least,
        "calls_ratio": round(calls / least, 3) if least else None,
        "write_calls_by_crm": {crm: sum(r.calls_of(crm) for r in rounds) for crm in CRMS},
        "write_calls_min_by_crm": {crm: sum(r.least[crm] for r in rounds) for crm in CRMS},
        "wall_s": round(wall, 2),
        "write_runs_side_by_side": SIDE_BY_SIDE,
        "bound_s": round(bound, 2),
        "time_ratio": round(wall / bound, 3) if bound else None,
                "write_step_s_by_crm": {crm: round(sum(r.runs[crm]["step_s"] for r in rounds), 2) for crm in CRMS},
        "bound_by_crm": {crm: round(sum(r.bound_of(crm) for r in rounds), 2) for crm in CRMS},
        "failed": len(failed),
        "failed_reasons": reasons(failed),
        "cycles": len(rounds),
        "written_by_cycle": [{crm: r.written_to(crm) for crm in CRMS} for r in rounds],
        "sent_retried_failed_by_cycle": [[len(r.sent), r.retried, len(r.failures())] for r in rounds],
        "calls_after_converged": sum(last.calls_of(crm) for crm in CRMS),
        "login_calls": sum(r.logins for r in rounds),
        "deferred": sum(_summed(rounds, "deferred").values()),
        "in_doubt": sum(_summed(rounds, "in_doubt").values()),
        "not_yet_written": {crm: rounds[-1].runs[crm]["meta"].get("not_yet_written") for crm in CRMS}
        if rounds else {},
        "write_calls_by_endpoint": by_endpoint,
    }


def run_writeback_bench(scale: int, seed: int, database_url: str | None) -> dict[str, Any]:
    with imported(scale, seed, database_url) as state, _warm_workers(len(CRMS)) as pool:
        started = time.perf_counter()
        engine = create_state_engine(state.state_url)
        seeded = seeded_ids(engine)
        pool.submit(_unified_run, state.settings_path, state.home, True).result()
        pool.submit(_plan_run, state.settings_path, state.home).result()
        first = _writes(pool, state, engine)
        _say(f"imported in {state.import_s:.0f} s; first sync wrote {first.written} records")
        setup, _ = _until_converged(pool, state, engine, "set-up")
        setup_s = time.perf_counter() - started
        set_rate_limits(state.info, on=True)
        edited, records, refused = edit(state.info, engine, seed)
        _say(f"rate limits on; {sum(edited.values())} of {records} records edited")
        measured, last = _until_converged(pool, state, engine, "measured")
        set_rate_limits(state.info, on=False)  # the check reads every record: not part of the measure
        _say("reading every record back for duplicates (rate limits lifted)")
        settings = load_settings(Path(state.settings_path))
        dupes, unchecked = duplicates(settings, seeded)
        outstanding = outbox.failures(engine)
        engine.dispose()
    return {
        "scale": scale,
        **_figures(measured, last),
        "duplicates": sum(dupes.values()),
        "duplicates_by_object": dupes,
        "duplicates_unchecked": unchecked,
        "failed_outstanding": len(outstanding),
        "failed_outstanding_reasons": reasons(outstanding),
        "edited": sum(edited.values()),
        "edited_by_object": edited,
        "edit_base_records": records,
        "edits_refused": refused,  # records a person cannot edit (converted Leads), passed over
        "import_s": round(state.import_s, 1),
        "setup_s": round(setup_s, 1),
        "setup_records_written": first.written + sum(c.written for c in setup),
        "setup_cycles": len(setup),
        "backend": "postgresql" if state.state_url.startswith("postgresql") else "sqlite",
    }

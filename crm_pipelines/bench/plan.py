"""``crm-pipelines bench plan``: the write-back plans (``writeback/*_plan``) on a state loaded as ``bench
unified`` loads it, each plan run through Dagster in a spawned process, as a run worker runs it.

- ``initial_plan_s``: the plans right after the bulk import and a full ``unified``: a first sync, where
  everything unmatched is to be created (a run of the plans alone, its set-up included);
- ``incremental_plan_s``: the plans after 1,000 records are edited across the CRMs, as the sync loop makes
  them: in the change sensor's run, right after the extracts of what changed and ``unified`` (``bench
  unified``'s incremental step), the stored plan brought up to date incrementally (``incremental_plan_mode``;
  ``incremental_identities_replanned`` of ``identities``, ``incremental_stored_rows_written``): the plan step's
  time in that run;
- ``planned_writes``: records the initial plans write (a record's updates are one write);
- ``api_calls_planned``: the calls the plans say their execution takes (each API's batch per object and
  action, ``sync/calls.py``); ``api_calls_min``: records to write per CRM / that API's batch size (a
  pipeline is one call), the bound no batching can beat; ``api_calls_ratio`` = planned / min;
- ``incremental_s``, ``incremental_extract_s``: ``bench unified``'s figures of the same run (from the tick to
  the end of its ``unified`` step, to its extracts' end);
- ``peak_rss_mb``: the largest run process (the first plans' run and the second process its full plan
  starts, ``plans.planned_elsewhere``: ``initial_plan_peak_rss_mb`` shows both; the incremental run, which
  also made the extracts and ``unified``); ``full_unified_peak_rss_mb``: the full ``unified`` run's;
- where the plan step's time goes: ``incremental_plan_update_s``, the incremental plan's own work (bringing
  the stored plan up to date, ``stored_plan.update_plans``); and ``plan_run_floor_s``, a plan run of its own
  right after it, when nothing changed: what a run of the plans alone costs besides the plan (Dagster's run
  and its events, the materializations' metadata from the stored counts).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg

from crm_pipelines.bench.unified import _unified_run, edit_and_sync, imported, plan_figures
from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.settings import load_settings
from crm_pipelines.sync.calls import BATCH


def _plan_run(settings_path: str, home: str | None) -> dict[str, Any]:
    """The three plans in one Dagster run, in this (spawned) process."""
    batch_partition_events()
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    started = time.perf_counter()
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([build_plan_assets()], instance=instance, resources=resources,
                                tags={"crm_pipelines/kind": "bench"})
    if not result.success:
        raise RuntimeError("the plan run failed")
    seconds = time.perf_counter() - started
    events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    # a full plan's second process (``plans.planned_elsewhere``) counts as one of the run's processes
    elsewhere = events[PLANS["hubspot"]].get("plan_elsewhere_peak_rss_mb")
    return {"seconds": seconds, **plan_figures(events), "peak_rss_mb": peak_rss_mb(),
            "elsewhere_peak_rss_mb": elsewhere.value if elsewhere is not None else None}


def _calls_min(crm: str, writes: int, unbatched: int) -> int:
    return unbatched + math.ceil((writes - unbatched) / BATCH[crm])


def run_plan_bench(scale: int, seed: int, database_url: str | None) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    with imported(scale, seed, database_url) as state:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            full = pool.submit(_unified_run, state.settings_path, state.home, True).result()
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            initial = pool.submit(_plan_run, state.settings_path, state.home).result()
        synced = edit_and_sync(state, seed, plans=True)
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            unchanged = pool.submit(_plan_run, state.settings_path, state.home).result()
    incremental = synced.plans
    assert incremental is not None
    if unchanged["plan"]["mode"] != "unchanged":
        raise RuntimeError(f"a plan run right after another replanned: {unchanged['plan']}")
    per_crm = initial["per_crm"]
    planned = sum(p["calls"] for p in per_crm.values())
    minimum = sum(_calls_min(crm, p["writes"], p["unbatched"]) for crm, p in per_crm.items())
    return {
        "scale": scale,
        "import_s": round(state.import_s, 1),
        "full_unified_s": round(full["seconds"], 2),
        "full_unified_parts_s": {k: round(v, 2) for k, v in full["parts"].items()},
        "initial_plan_s": round(initial["seconds"], 2),
        "full_unified_peak_rss_mb": full["peak_rss_mb"],  # issue 11's figure, measured on the way
        # from the change sensor's tick to the end of its run's ``unified`` step (as in ``bench unified``)
        "incremental_s": round(synced.seconds, 2),
        "incremental_extract_s": round(synced.extract_s, 2),
        "incremental_plan_s": round(incremental["seconds"], 2),
        "incremental_plan_update_s": round(incremental["plan"]["parts_s"]["total_s"], 2),
        "plan_run_floor_s": round(unchanged["seconds"], 2),
        "planned_writes": sum(p["writes"] for p in per_crm.values()),
        "planned_writes_by_crm": {crm: p["writes"] for crm, p in per_crm.items()},
        "api_calls_planned": planned,
        "api_calls_min": minimum,
        "api_calls_ratio": round(planned / minimum, 4) if minimum else None,
        "incremental_planned_writes": sum(p["writes"] for p in incremental["per_crm"].values()),
        "initial_plan_mode": initial["plan"]["mode"],
        "incremental_plan_mode": incremental["plan"]["mode"],
        "incremental_identities_replanned": incremental["plan"]["replanned"],
        "identities": initial["plan"]["replanned"],
        "incremental_stored_rows_written": incremental["plan"]["rows_written"],
        "initial_plan_parts_s": initial["plan"]["parts_s"],
        "incremental_plan_parts_s": incremental["plan"]["parts_s"],
        "peak_rss_mb": max(initial["peak_rss_mb"], initial["elsewhere_peak_rss_mb"] or 0,
                           synced.unified["peak_rss_mb"]),
        "initial_plan_peak_rss_mb": {"run": initial["peak_rss_mb"], "elsewhere": initial["elsewhere_peak_rss_mb"]},
        "backend": "postgresql" if state.state_url.startswith("postgresql") else "sqlite",
    }


"""``crm-pipelines bench unified``: a full ``unified`` from the stored mirror, then an incremental one after
1,000 records are edited across the CRMs, each through real Dagster runs on a fresh state database.

The bulk import runs as ``bench extract`` runs it (the CRMs side by side, each in its own process), with
the sandboxes' rate limits lifted (the connectors still pace themselves at the published limits). Then:

- ``full_s``: one full ``unified`` run (``full: true``) from the stored mirror: read, transform, write, and the
  ``VACUUM (ANALYZE)`` of what it wrote (``full_parts_s``);
- ``incremental_s``: after 1,000 records are edited in the sandboxes' UIs (about a third per CRM), the
  change sensor's tick and the run it requests, as the sync loop runs it (``defs/sync/change_sensor.py``):
  one run, its steps in the run's process, with the extracts of what changed (``incremental_extract_s``
  from the tick to their end, ``extract_steps``: one per CRM) and ``unified`` after them, from the tick to
  the end of the ``unified`` step (the loop's run goes on with the plans and the writes, which ``bench
  plan`` and ``bench writeback`` measure), in a run worker started beforehand (``tick_s``: the tick, in a
  process holding what a running daemon holds; ``run_setup_s``: the run's definitions, resources and
  instance, to its start); ``run_start_s``: what starting one cold costs (Python and the imports a run
  needs), which the daemon's default run launcher adds per run;
- ``changed_rows``: the result rows that incremental run wrote (deleted + inserted);
- ``peak_rss_mb``: the largest run process (the full ``unified`` run, the incremental run);
- ``incremental_parts_s``: where the incremental run's time went (reading the delta, the transform with
  its reads of the stored result, the writes); ``stored_rows_read``/``stored_read_rounds``: how much of the
  stored result it read, in how many rounds (``defs/unified/stored_result.py``).

Runs execute in spawned processes, as run workers do, so the memory measured is a run's own.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import numpy as np
import yaml

from crm_pipelines.bench.extract import (
    Lane,
    _dagster_home,
    _environment,
    _fresh_database,
    _run_lane,
    _source_counts,
)
from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import CONTACTS, build_unified_assets
from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.sandbox.launch import running_sandboxes
from crm_pipelines.sandbox.universe import TIME_RANGE
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import STATE_DB_ENV
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine

CRMS = ("hubspot", "salesforce", "dynamics")
EDITS = 1_000
# what a person edits in each CRM's UI: object, the field, where the record ids come from
_EDIT = {
    "hubspot": ("contacts", lambda v: {"properties": {"jobtitle": v}}),
    "salesforce": ("Contact", lambda v: {"Title": v}),
    "dynamics": ("contacts", lambda v: {"jobtitle": v}),
}


@contextmanager
def _sandboxes(scale: int, seed: int):
    """Each CRM's sandbox in its own process, rate limits lifted for the import."""
    with ExitStack() as stack:
        info: dict = {}
        for crm in CRMS:
            info.update(stack.enter_context(running_sandboxes([crm], scale=scale, seed=seed,
                                                              extra=("--no-rate-limits",))))
        yield info


def _unified_run(settings_path: str, home: str | None, full: bool) -> dict[str, Any]:
    """One ``unified`` run through Dagster, in this (spawned) process."""
    batch_partition_events()
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    started = time.perf_counter()
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [build_unified_assets(settings)],
            instance=instance,
            resources=resources,
            run_config={"ops": {"unified_transform": {"config": {"full": full}}}},
            tags={"crm_pipelines/kind": "bench"},
        )
    if not result.success:
        raise RuntimeError("the unified run failed")
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    return {
        "seconds": time.perf_counter() - started,
        "mode": meta["mode"].value,
        "rows_written": meta["rows_written"].value,
        "mirror_rows_read": meta["mirror_rows_read"].value,
        "parts": {k: meta[k].value for k in ("read_s", "transform_s", "write_s", "vacuum_s") if k in meta},
        "stored_rows_read": meta["stored_rows_read"].value if "stored_rows_read" in meta else None,
        "stored_read_rounds": meta["stored_read_rounds"].value if "stored_read_rounds" in meta else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def _edit(info: dict, state_url: str, count: int, seed: int) -> dict[str, int]:
    """``count`` records edited through the sandboxes' UI endpoints, spread over the three CRMs."""
    engine = create_state_engine(state_url)
    rng = np.random.default_rng(seed)
    per_crm = {crm: count // len(CRMS) + (i < count % len(CRMS)) for i, crm in enumerate(CRMS)}
    done = {}
    for crm, n in per_crm.items():
        obj, body = _EDIT[crm]
        frame = mirror.read_records(engine, crm, obj)
        ids = frame.loc[~frame["deleted"], "id"].to_numpy(dtype=object)
        chosen = rng.choice(ids, size=min(n, len(ids)), replace=False)
        base = f"{info[crm]['base_url']}/__sandbox__/ui/{obj}"
        with httpx.Client(verify=False, timeout=60) as ui:
            for i, record_id in enumerate(chosen):
                ui.patch(f"{base}/{record_id}", json=body(f"Edited {seed}-{i}")).raise_for_status()
        done[crm] = len(chosen)
    engine.dispose()
    return done


def _warm() -> None:
    """A run worker's start: the interpreter and every module a run imports (paid once per worker)."""
    batch_partition_events()


def _started(_: int = 0) -> int:
    time.sleep(0.5)  # long enough that every worker of the pool takes one
    return multiprocessing.current_process().pid or 0


def _sensor_tick(settings_path: str, home: str | None) -> list[tuple[list[list[str]], str | None, dict]]:
    """The change sensor's tick, as the daemon evaluates it: the runs it requests."""
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    sensor = build_change_sensor(settings, daily_partitions(settings.extract))
    with (
        dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance,
        dg.build_sensor_context(instance=instance, resources=resources) as context,
    ):
        requests = sensor(context).run_requests
    return [([k.path for k in r.asset_selection], r.partition_key, dict(r.tags)) for r in requests]


def _extract_run(settings_path: str, home: str | None, request: tuple[list[list[str]], str | None, dict]) -> None:
    """One requested extract run."""
    keys, partition_key, tags = request
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        run = dg.materialize(build_extract_assets(settings), selection=[dg.AssetKey(k) for k in keys],
                             instance=instance, resources=resources, partition_key=partition_key, tags=tags)
    if not run.success:
        raise RuntimeError(f"incremental extract {keys} failed")


@contextmanager
def _warm_workers(count: int):
    """Run workers started before the clock: what is measured is the runs' work, not Python's start-up
    (``run_start_s`` says what a cold start costs; the daemon's default launcher pays it per run)."""
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_warm) as pool:  # fmt: skip
        list(pool.map(_started, range(count)))
        yield pool


def _cold_start() -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm) as pool:
        pool.submit(int).result()
    return time.perf_counter() - started


@dataclass
class Imported:
    """What the benches after the bulk import start from."""

    info: dict  # the sandboxes' endpoints
    state_url: str
    settings_path: str
    home: str | None  # the Dagster home the runs share
    import_s: float


@contextmanager
def imported(scale: int, seed: int, database_url: str | None) -> Iterator[Imported]:
    """Sandboxes, a fresh state database and the bulk import into it (the CRMs side by side)."""
    spawn = multiprocessing.get_context("spawn")
    with (
        _sandboxes(scale, seed) as info,
        _fresh_database(database_url) as state_url,
        tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp,
        _environment(**{STATE_DB_ENV: state_url}),
    ):
        data_dir = Path(tmp)
        (data_dir / "endpoints.json").write_text(json.dumps(info))
        settings_path = str(data_dir / "settings.yaml")
        Path(settings_path).write_text(yaml.safe_dump({
            "state_database_url": state_url,
            "sandbox": {"data_dir": str(data_dir)},
            "extract": {"start_date": TIME_RANGE[0].date().isoformat()},
        }))  # fmt: skip
        with _dagster_home(database_url) as home:
            started = time.perf_counter()
            with ProcessPoolExecutor(max_workers=len(CRMS), mp_context=spawn) as pool:
                list(pool.map(_run_lane, [Lane(crm, settings_path, home) for crm in CRMS]))
            yield Imported(info, state_url, settings_path, home, time.perf_counter() - started)


@dataclass
class Synced:
    """1,000 edits carried into ``unified`` (and the plans, when asked) as the sync loop runs them."""

    edited: dict[str, int]
    unified: dict[str, Any]  # the run's figures (``_chain_run``)

    @property
    def extract_steps(self) -> int:  # the CRMs whose extracts the tick's run made (one step each)
        return self.unified["extracts"]

    @property
    def extract_s(self) -> float:  # from the tick to the last extract's end
        return self.unified["extract_s"]

    @property
    def seconds(self) -> float:  # from the sensor's tick to the end of the ``unified`` step
        return self.unified["seconds"]

    @property
    def plans(self) -> dict[str, Any] | None:  # the plan step's figures, when the run made the plans
        return self.unified.get("plans")


def _event_times(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> dict[str, float]:
    """When the run recorded each event of ``kind``, by step ("" for run events): the event log's time,
    seconds since the epoch."""
    records = instance.get_records_for_run(run_id, of_type=kind).records
    return {r.event_log_entry.step_key or "": r.event_log_entry.timestamp for r in records}


_DAEMON: dict[str, Any] = {}  # the tick worker's instance, opened before the clock starts (as the daemon's is)


def _daemon_ready(home: str | None) -> None:
    """What a running daemon already holds when a tick comes: the sensor's modules and the Dagster instance."""
    from crm_pipelines.defs.sync import chain, change_sensor  # noqa: F401  (imported, as in the code server)

    _DAEMON["instance"] = dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral()


def _sync_tick(settings_path: str) -> tuple[list[list[str]], str | None, dict[str, str]]:
    """The change sensor's tick (``defs/sync/change_sensor``), as the daemon evaluates it: the one run it asks
    for (nothing is busy), with the extracts of what changed and the chain after them."""
    from crm_pipelines.defs.sync.chain import sync_chain
    from crm_pipelines.defs.sync.change_sensor import sync_requests

    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    today = daily_partitions(settings.extract).get_last_partition_key()
    tick = sync_requests(settings, sync_chain(settings), today, _DAEMON["instance"], resources["state"],
                         resources["crm_connections"], queued=False)  # fmt: skip
    if len(tick.requests) != 1:  # the bench's edits leave nothing busy: one chain run, or the set-up is wrong
        raise RuntimeError(f"the tick asked for {len(tick.requests)} runs, not the one chain run: {tick.said}")
    (request,) = tick.requests
    return [k.path for k in request.asset_selection or []], request.partition_key, dict(request.tags)


def _daemon_done() -> None:
    _DAEMON.pop("instance").dispose()


def _chain_run(settings_path: str, home: str | None, request: tuple[list[list[str]], str | None, dict[str, str]],
               started_at: float, plans: bool) -> dict[str, Any]:
    """The run the tick asked for, as a run worker runs it: ONE run, its steps in the worker's process, keeping
    one connection to Dagster's storage (the project's executor does both for the loop's runs), with the
    extracts of what changed, ``unified`` and the rest of the chain; here the chain stops after ``unified``
    (``plans``: after the plans), since a bench makes no writes. Times count from ``started_at``, the tick."""
    from crm_pipelines.defs.writeback.assets import build_plan_assets
    from crm_pipelines.executors import hold_storage_connection

    received_at = time.time()
    batch_partition_events()
    settings = load_settings(Path(settings_path))
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    extract_defs = build_extract_assets(settings)
    unified_def, plan_def = build_unified_assets(settings), build_plan_assets()
    extract_keys = {k for a in extract_defs for k in a.keys}
    kept = {*unified_def.keys, *(plan_def.keys if plans else ())}
    paths, partition_key, tags = request
    asked = [dg.AssetKey(p) for p in paths]
    extracts = [k for k in asked if k in extract_keys]
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        hold_storage_connection(instance)
        result = dg.materialize([*extract_defs, unified_def, plan_def], selection=[*extracts, *(k for k in asked
                                if k in kept)], partition_key=partition_key, instance=instance, resources=resources,
                                tags={**tags, "crm_pipelines/kind": "bench"})  # fmt: skip
        if not result.success:
            raise RuntimeError("the chain run failed")
        ends = _event_times(instance, result.run_id, dg.DagsterEventType.STEP_SUCCESS)
        began = _event_times(instance, result.run_id, dg.DagsterEventType.RUN_START)[""]
    meta = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    unified_meta = meta[CONTACTS]
    unified_end = ends["unified_transform"]
    figures = {
        "extracts": sum(1 for k in ends if k.endswith("_extract")),  # steps: one per CRM
        "extract_s": max(t for k, t in ends.items() if k.endswith("_extract")) - started_at,
        "tick_s": received_at - started_at,  # the tick, and handing its request to the run worker
        "run_setup_s": began - received_at,  # the run worker's definitions, resources and instance, to the run's start
        "seconds": unified_end - started_at,
        "mode": unified_meta["mode"].value,
        "rows_written": unified_meta["rows_written"].value,
        "mirror_rows_read": unified_meta["mirror_rows_read"].value,
        "parts": {k: unified_meta[k].value for k in ("read_s", "transform_s", "write_s") if k in unified_meta},
        "stored_rows_read": unified_meta["stored_rows_read"].value if "stored_rows_read" in unified_meta else None,
        "stored_read_rounds": (unified_meta["stored_read_rounds"].value
                               if "stored_read_rounds" in unified_meta else None),
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip
    if plans:
        figures["plans"] = {"seconds": ends["writeback_plans"] - unified_end, **plan_figures(meta)}
    return figures


def plan_figures(meta: dict[dg.AssetKey, Any]) -> dict[str, Any]:
    """What the plan step's materializations say: its mode and work, and each CRM's writes and calls."""
    from crm_pipelines.defs.writeback.assets import PLANS

    hubspot = meta[PLANS["hubspot"]]
    return {
        "plan": {"mode": hubspot["plan_mode"].value, "replanned": hubspot["identities_replanned_total"].value,
                 "rows_written": hubspot["stored_rows_written"].value, "parts_s": hubspot["plan_seconds"].value},
        "per_crm": {crm: {"writes": meta[key]["planned_writes"].value, "unbatched": meta[key]["unbatched_writes"].value,
                          "calls": meta[key]["api_calls_planned"].value} for crm, key in PLANS.items()},
    }  # fmt: skip


def edit_and_sync(state: Imported, seed: int, plans: bool = False) -> Synced:
    """Edits in the sandboxes' UIs, then the sensor's tick and the run it requests, in processes started after
    them (as before a tick; their start also gives the edits the seconds HubSpot's search takes to see them)."""
    edited = _edit(state.info, state.state_url, EDITS, seed)
    # the tick and the run in processes of their own, as the daemon and a run worker are (each process paces
    # its calls from its own start: a run does not wait out the tick's polls)
    with _warm_workers(1) as daemon, _warm_workers(1) as worker:
        daemon.submit(_daemon_ready, state.home).result()
        started_at = time.time()
        request = daemon.submit(_sync_tick, state.settings_path).result()
        run = worker.submit(_chain_run, state.settings_path, state.home, request, started_at, plans).result()
        daemon.submit(_daemon_done).result()
    return Synced(edited, run)


def run_unified_bench(scale: int, seed: int, database_url: str | None) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    with imported(scale, seed, database_url) as state:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            full = pool.submit(_unified_run, state.settings_path, state.home, True).result()
        run_start_s = _cold_start()
        synced = edit_and_sync(state, seed)
        records = sum(_source_counts(state.info).values())
    import_s, state_url, incremental = state.import_s, state.state_url, synced.unified
    incremental_s, extract_s, edited = synced.seconds, synced.extract_s, synced.edited
    return {
        "scale": scale,
        "records": records,
        "import_s": round(import_s, 1),
        "full_s": round(full["seconds"], 2),
        "full_rows_written": full["rows_written"],
        "full_parts_s": {k: round(v, 2) for k, v in full["parts"].items()},
        "edited": edited,
        "extract_steps": synced.extract_steps,
        "incremental_extract_s": round(extract_s, 2),
        "incremental_unified_s": round(incremental_s - extract_s, 2),
        "incremental_s": round(incremental_s, 2),
        "tick_s": round(incremental["tick_s"], 2),
        "run_setup_s": round(incremental["run_setup_s"], 2),
        "incremental_ratio": round(incremental_s / full["seconds"], 4) if full["seconds"] else None,
        "incremental_mode": incremental["mode"],
        "delta_rows": incremental["mirror_rows_read"],
        "changed_rows": incremental["rows_written"],
        "incremental_parts_s": {k: round(v, 2) for k, v in incremental["parts"].items()},
        "stored_rows_read": incremental["stored_rows_read"],
        "stored_read_rounds": incremental["stored_read_rounds"],
        "peak_rss_mb": max(full["peak_rss_mb"], incremental["peak_rss_mb"]),
        "run_start_s": round(run_start_s, 2),
        "backend": "postgresql" if state_url.startswith("postgresql") else "sqlite",
    }

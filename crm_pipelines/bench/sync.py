"""``crm-pipelines bench sync``: the sync loop as deployed (issue 14, OPS-1): the Dagster daemon alone, with
the project's default settings and the sandboxes' published rate limits on, carrying a steady stream of edits
made in the sandboxes' UIs to the other CRMs.

Set-up (not measured; rate limits lifted to keep it short): the sandboxes seeded at ``--scale``, the bulk
import into a new state database and a new Dagster database (both on ``--database-url``), then a first sync and
sync cycles until one writes nothing (``bench writeback``'s set-up), and the extracts' safety lag drained (one
extract of every object after ``SAFETY_LAG``: ``_drain_safety_lag`` says why). Then the rate limits go on and
``dagster-daemon run`` starts on that Dagster database, with the repo's ``dagster.yaml`` (its run queue and
pools) and the project's code location; the bench launches no run. It waits for the daemon to settle: no run
in progress or launched for ``--settle-s`` (default: the change sensor's active spell after a change it saw,
``ACTIVE_FOR``, plus an interval and half a minute: the set-up's own writes are such a change, and until the
spell ends the sensor polls at its busy pace), then:

- ``idle_calls_per_hour``: per connection, the API calls its sandbox received during ``--idle-s`` with no
  edit (``/__sandbox__/usage``; token requests apart: they go to the identity provider), times 3,600 /
  idle_s; ``idle_runs``: runs the daemon launched meanwhile;
- the edit stream: one edit every ``--edit-every-s`` for ``--duration-s`` (``edits``), each one mapped field of
  one linked record, never the same record twice (``bench/sync_edits.py``'s rotation: the source CRM in turn,
  the field among contact first and last name, company name, deal name, amount and description, passing over
  a kind the source has no linked record of: deals link HubSpot and Salesforce only); ``edits_refused``:
  records the UI would not let a person edit (a converted Lead), passed over; ``edits_by_field``: per
  ``crm.object.field``;
- ``expected``: edits that should sync: every edit, as each record edited is linked in HubSpot and at least
  one other CRM (its targets: the CRMs it is linked in besides the source); ``arrived``: those whose value was
  read back from every target's API; ``arrivals`` of ``expected_pairs`` per (edit, target); ``not_arrived``:
  the first ten edits missing somewhere, with the targets that lack them;
- ``latency_p50_s``, ``latency_p95_s``, ``latency_max_s``: over the (edit, target) pairs that arrived, from
  the UI's answer to the edit to the first read that returned the new value (a poller reads every pending
  value each ``POLL_S`` = 2 s: the resolution); ``latency_by_route``: the same per source -> target (HubSpot is
  the hub: an edit in Salesforce reaches Dynamics through it, a cycle later);
- after the last edit, up to ``--drain-s`` for the stragglers, then until the loop is quiet again (as
  above, within another ``--drain-s``); ``edit_phase_s``: from the first edit to then;
- ``api_calls_per_edit`` = (API calls the sandboxes received during the edit phase, logins apart, less the
  poller's own reads (``bench_read_calls``, counted by its meter; the sandboxes offer no read path apart from
  the API) less the idle rate over edit_phase_s) / edits; ``api_calls_edit_phase``: the sync's calls per CRM;
- ``duplicates``: records the sync made that share an identity with another live record of their CRM, read
  back through the APIs after the daemon stopped (rate limits lifted for the read): must be 0
  (``bench/writeback_records.py``);
- ``sensor_interval_s``, ``idle_interval_s``: the change sensor's intervals in force while changes come and
  when idle (the default settings'); ``settle_s``: the wait before the idle phase; ``runs_launched``,
  ``runs_failed``: the runs the daemon launched from its start to the end, and those that failed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import yaml
from sqlalchemy.engine import Engine

from crm_pipelines.bench.plan import _plan_run
from crm_pipelines.bench.sync_edits import POLL_S, Edit, edit_stream, linked_records
from crm_pipelines.bench.unified import Imported, _extract_run, _unified_run, _warm_workers, imported
from crm_pipelines.bench.writeback import MOST_CYCLES, _cycle, _writes
from crm_pipelines.bench.writeback_measure import CRMS, calls_between, set_rate_limits, usage
from crm_pipelines.bench.writeback_records import duplicates, seeded_ids
from crm_pipelines.defs.extract.sensors import polled_objects
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.run_tags import KIND_TAG, SWEEP
from crm_pipelines.defs.sync import change_sensor
from crm_pipelines.extract.runner import SAFETY_LAG
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SETTINGS_ENV
from crm_pipelines.state.db import create_state_engine

REPO = Path(__file__).resolve().parents[2]  # the repo's dagster.yaml and the code location's directory
SETTLE_MAX_S = 2400  # the daemon's first ticks after the set-up; more means it does not settle
QUIET_EXTRA_S = 30  # past a sensor interval: the runs an evaluation requests take this long to show
CHECK_S = 5.0


def _active_spell_s() -> float:
    """How long the change sensor keeps its busy pace after a change it saw (none if it has no such spell)."""
    return getattr(change_sensor, "ACTIVE_FOR", timedelta(0)).total_seconds()


def _say(text: str) -> None:
    """Progress on standard error (standard output's last line is the figures)."""
    print(f"bench sync: {text}", file=sys.stderr, flush=True)


def _set_up(state: Imported, engine: Engine, drain_lag: bool) -> tuple[int, int]:
    """The first sync and cycles until one writes nothing, in warm run workers, then the safety lag drained
    (``_drain_safety_lag``): records written, cycles."""
    with _warm_workers(len(CRMS)) as pool:
        pool.submit(_unified_run, state.settings_path, state.home, True).result()
        pool.submit(_plan_run, state.settings_path, state.home).result()
        written = _writes(pool, state, engine).written
        for cycles in range(1, MOST_CYCLES + 1):
            wrote = _cycle(pool, state, engine).written
            _say(f"set-up cycle {cycles}: {wrote} records written")
            if not wrote:
                if drain_lag:
                    _drain_safety_lag(pool, state, engine)
                return written, cycles
            written += wrote
    raise RuntimeError(f"the set-up's sync did not converge in {MOST_CYCLES} cycles")


def _drain_safety_lag(pool: ProcessPoolExecutor, state: Imported, engine: Engine) -> None:
    """Every extract reads again what changed in the ``SAFETY_LAG`` before its cursor (a search index may show a
    change late), so the first extract of each object after the set-up's bulk writes reads them all once more:
    at ``--scale 100000`` about 28,000 HubSpot records and 745 calls (81 s of run with the rate limits lifted;
    under them, a 440 s chain that held up the edits). A deployment pays that once after its first sync; the bench
    pays it here, before the daemon starts, so that the idle and edit phases measure the steady state rather than
    whichever run meets it first (the hourly sweep or the first edit's extract)."""
    settings = load_settings(Path(state.settings_path))
    _say(f"waiting out the extracts' safety lag ({SAFETY_LAG.total_seconds():.0f} s), then one extract of every "
         "object reads the set-up's last writes once")
    time.sleep(SAFETY_LAG.total_seconds())
    today = daily_partitions(settings.extract).get_last_partition_key()
    objects = polled_objects(settings)
    requests = [([[c, o] for c, o in objects if c == crm], today, {KIND_TAG: SWEEP}) for crm in CRMS]
    for done in [pool.submit(_extract_run, state.settings_path, state.home, r) for r in requests]:
        done.result()
    _say(f"set-up, after the safety lag: {_cycle(pool, state, engine).written} records written")


@contextmanager
def _daemon_home(bench_home: str) -> Iterator[Path]:
    """A DAGSTER_HOME for the daemon: the repo's ``dagster.yaml`` (run queue, pools, as deployed) with the
    storage of the bench's own Dagster database (where the set-up's runs are), and a workspace of the
    project's code location."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["storage"] = yaml.safe_load(Path(bench_home, "dagster.yaml").read_text())["storage"]
    with tempfile.TemporaryDirectory(prefix="crm-bench-daemon-") as tmp:
        home = Path(tmp)
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        (home / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"python_module": {
            "module_name": "crm_pipelines.definitions", "working_directory": str(REPO),
            "location_name": "crm_pipelines"}}]}))  # fmt: skip
        yield home


@contextmanager
def _daemon(home: Path, settings_path: str) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` in its own session, stopped with the runs and code server it started."""
    env = {**os.environ, "DAGSTER_HOME": str(home), SETTINGS_ENV: settings_path}
    with (home / "daemon.log").open("w") as log:
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                   str(home / "workspace.yaml")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    try:
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)


def _alive(daemon: subprocess.Popen, home: Path) -> None:
    if daemon.poll() is not None:
        raise RuntimeError(f"the daemon stopped: {(home / 'daemon.log').read_text()[-3000:]}")


def _runs(instance: dg.DagsterInstance, since: datetime) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(created_after=since)))


def _run_figures(record: dg.RunRecord) -> dict[str, Any]:
    """A run's kind and reason (its tags), its wait in the queue and its own time: where a change's latency went."""
    tags, created = record.dagster_run.tags, record.create_timestamp.timestamp()
    started, ended = record.start_time, record.end_time
    return {"kind": tags.get("crm_pipelines/kind"), "chain": tags.get("crm_pipelines/chain") == "true",
            "reason": tags.get("crm_pipelines/reason"), "status": record.dagster_run.status.value,
            "queued_s": round(started - created, 1) if started else None,
            "run_s": round(ended - started, 1) if started and ended else None}  # fmt: skip


def _quiet(
    instance: dg.DagsterInstance, daemon: subprocess.Popen, home: Path, since: datetime, quiet_s: float, most_s: float
) -> float:
    """Waits until no run is in progress and none was launched for ``quiet_s`` (at most ``most_s``): seconds."""
    started, calm_from = time.monotonic(), datetime.now(UTC)
    while time.monotonic() - started < most_s:
        _alive(daemon, home)
        runs = _runs(instance, since)
        busy = any(not r.dagster_run.is_finished for r in runs)
        latest = max([calm_from, *(r.create_timestamp for r in runs)])
        if not busy and datetime.now(UTC) - latest >= timedelta(seconds=quiet_s):
            break
        time.sleep(CHECK_S)
    return time.monotonic() - started


def _idle(info: dict, daemon: subprocess.Popen, home: Path, idle_s: float) -> dict[str, Counter]:
    """The API calls per CRM and endpoint the sandboxes received during ``idle_s`` with no edit."""
    before, until = usage(info), time.monotonic() + idle_s
    while time.monotonic() < until:
        _alive(daemon, home)
        time.sleep(min(CHECK_S, max(0.0, until - time.monotonic())))
    return calls_between(before, usage(info))[0]


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": len(latencies), "p50": round(float(np.percentile(latencies, 50)), 1),
            "p95": round(float(np.percentile(latencies, 95)), 1)}  # fmt: skip


def _latency_figures(edits: list[Edit]) -> dict[str, Any]:
    pairs = [(e.source, crm, at - e.edited_at) for e in edits for crm, at in e.arrived_at.items()]
    overall = _percentiles([s for *_, s in pairs])
    routes = sorted({(s, t) for s, t, _ in pairs})
    missing = [f"#{e.n} {e.source} {e.spec.kind} {e.spec.fields[e.source]}={e.value!r} "
               f"{e.record[e.source][1]}: not in {', '.join(t for t in e.targets if t not in e.arrived_at)}"
               for e in edits if not e.arrived()]  # fmt: skip
    return {
        "expected": len(edits),
        "arrived": sum(e.arrived() for e in edits),
        "expected_pairs": sum(len(e.targets) for e in edits),
        "arrivals": len(pairs),
        "latency_p50_s": overall["p50"],
        "latency_p95_s": overall["p95"],
        "latency_max_s": round(max((s for *_, s in pairs), default=0.0), 1) if pairs else None,
        "latency_by_route": {
            f"{s}->{t}": _percentiles([x for a, b, x in pairs if (a, b) == (s, t)]) for s, t in routes
        },
        "not_arrived": missing[:10],
    }


def _edit_phase(
    state: Imported,
    records: dict,
    daemon: subprocess.Popen,
    home: Path,
    instance: dg.DagsterInstance,
    options: dict[str, float],
    seed: int,
) -> dict[str, Any]:
    """The edit stream, the drain, then until the loop is quiet: the edits and what the sync's calls were."""
    settings = load_settings(Path(state.settings_path))
    before, started, since = usage(state.info), time.monotonic(), datetime.now(UTC)
    edits, editor, poller, _ = asyncio.run(edit_stream(
        state.info, settings, records, duration_s=options["duration_s"], every_s=options["edit_every_s"],
        drain_s=options["drain_s"], tag=str(seed)))  # fmt: skip
    _alive(daemon, home)
    _say(f"{sum(e.arrived() for e in edits)} of {len(edits)} edits arrived; waiting for the loop to be quiet")
    _quiet(instance, daemon, home, since, options["quiet_s"], options["drain_s"])
    calls = calls_between(before, usage(state.info))[0]
    bench_reads = poller.calls()
    return {"edits": edits, "refused": editor.refused, "seconds": time.monotonic() - started,
            "sync_calls": {crm: sum(calls[crm].values()) - bench_reads[crm] for crm in CRMS},
            "bench_reads": {crm: bench_reads[crm] for crm in CRMS}}  # fmt: skip


def run_sync_bench(scale: int, seed: int, database_url: str, options: dict[str, float]) -> dict[str, Any]:
    """``options``: ``duration_s``, ``edit_every_s``, ``idle_s``, ``drain_s``, ``settle_s``, ``drain_lag`` (the
    command's options; ``settle_s`` None: the default above)."""
    if not database_url.startswith("postgresql"):
        raise ValueError("bench sync needs a PostgreSQL --database-url: the daemon's instance lives there")
    with imported(scale, seed, database_url) as state:
        started = time.perf_counter()
        engine = create_state_engine(state.state_url)
        seeded = seeded_ids(engine)
        written, cycles = _set_up(state, engine, options["drain_lag"])
        setup_s = time.perf_counter() - started
        records = linked_records(engine, seed)
        settings = load_settings(Path(state.settings_path))
        interval = settings.extract.sensor_interval_s
        options = {**options, "quiet_s": interval + QUIET_EXTRA_S}
        settle_quiet_s = options.get("settle_s") or _active_spell_s() + options["quiet_s"]
        _say(
            f"imported in {state.import_s:.0f} s, set-up in {setup_s:.0f} s ({written} records written); "
            f"linked records: { {k: len(v) for k, v in records.items()} }; rate limits on, daemon starts"
        )
        set_rate_limits(state.info, on=True)
        with (_daemon_home(state.home) as home, _daemon(home, state.settings_path) as daemon,
              dg.DagsterInstance.from_config(str(home)) as instance):  # fmt: skip
            since = datetime.now(UTC)
            settle_s = _quiet(instance, daemon, home, since, settle_quiet_s, SETTLE_MAX_S)
            idle_since = datetime.now(UTC)
            _say(f"settled in {settle_s:.0f} s; idle for {options['idle_s']:.0f} s")
            idle = _idle(state.info, daemon, home, options["idle_s"])
            idle_runs = len(_runs(instance, idle_since))
            _say(f"idle calls { ({c: sum(idle[c].values()) for c in CRMS}) }; edits start")
            phase = _edit_phase(state, records, daemon, home, instance, options, seed)
            runs = _runs(instance, since)
        set_rate_limits(state.info, on=False)  # the duplicates check reads every record: not part of the measure
        _say("reading every record back for duplicates (rate limits lifted)")
        dupes, unchecked = duplicates(settings, seeded)
        engine.dispose()
    per_hour = {crm: round(sum(idle[crm].values()) * 3600 / options["idle_s"], 1) for crm in CRMS}
    edits: list[Edit] = phase["edits"]
    idle_share = sum(per_hour.values()) * phase["seconds"] / 3600
    return {
        "scale": scale,
        "edits": len(edits),
        **_latency_figures(edits),
        "api_calls_per_edit": round((sum(phase["sync_calls"].values()) - idle_share) / len(edits), 2)
        if edits
        else None,
        "api_calls_edit_phase": phase["sync_calls"],
        "bench_read_calls": phase["bench_reads"],
        "edit_phase_s": round(phase["seconds"], 1),
        "idle_calls_per_hour": per_hour,
        "idle_calls_by_endpoint": {crm: dict(idle[crm]) for crm in CRMS},
        "idle_s": options["idle_s"],
        "idle_runs": idle_runs,
        "duplicates": sum(dupes.values()),
        "duplicates_by_object": dupes,
        "duplicates_unchecked": unchecked,
        "sensor_interval_s": interval,
        "runs_launched": len(runs),
        "runs_failed": sum(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in runs),
        "runs": [_run_figures(r) for r in sorted(runs, key=lambda r: r.create_timestamp)],
        "settle_s": round(settle_s, 1),
        "settle_quiet_s": settle_quiet_s,
        "idle_interval_s": getattr(settings.extract, "idle_interval_s", None),
        "edits_refused": phase["refused"],
        "edits_by_field": dict(Counter(f"{e.source}.{e.record[e.source][0]}.{e.spec.fields[e.source]}" for e in edits)),
        "edit_every_s": options["edit_every_s"],
        "duration_s": options["duration_s"],
        "poll_s": POLL_S,
        "import_s": round(state.import_s, 1),
        "setup_s": round(setup_s, 1),
        "setup_cycles": cycles,
        "drain_lag": options["drain_lag"],
    }

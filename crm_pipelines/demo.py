"""``crm-pipelines demo`` (``make demo``): the whole product against the bundled sandboxes, end to end (issue 15).

Starts the three sandboxes on their fixed ports and data directory (the ones ``crm-pipelines sandbox serve``
serves afterwards), runs the bulk import as a Dagster backfill, the transform, the plans and the writes as real
runs on the demo's own Dagster instance (``.dagster_home``, with a ``dagster.yaml`` of its own), then makes a
handful of edits in each sandbox's UI, one of them a conflict, and lets the sync carry them across, timing each
arrival through the target CRM's API. It says per step what happened; Dagster's own log goes to a file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import dagster as dg

from crm_pipelines import demo_report as report
from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.demo_instance import prepare_home, uses_postgres, write_settings
from crm_pipelines.demo_log import event_lines, stderr_to
from crm_pipelines.demo_progress import LABELS, expected_counts, line_start, live_progress, mirror_counts
from crm_pipelines.demo_ui import by_hand, remember
from crm_pipelines.sandbox.launch import running_sandboxes
from crm_pipelines.sandbox.registry import SANDBOXES
from crm_pipelines.settings.load import STATE_DB_ENV

DEMO_DIR = Path(".crm_pipelines")
DAGSTER_HOME = Path(".dagster_home")
LOG_FILE = DEMO_DIR / "demo.log"
SETTINGS_FILE = DEMO_DIR / "demo.yaml"
STATE_DB = DEMO_DIR / "demo-state.sqlite3"
CRMS = ["hubspot", "salesforce", "dynamics"]
# the ports `crm-pipelines sandbox serve` uses by default, so runs launched later from the UI find the sandboxes
PORTS = {crm: SANDBOXES[crm].default_port for crm in CRMS}
UI_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    scale: int
    seed: int
    keep_serving: bool = False
    verbose: bool = False
    api_call_limit: int = 10_000
    sync_timeout_s: float = 420  # the edits must have arrived by then (a loaded machine takes a minute or two)
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))
    started: float = field(default_factory=time.monotonic)  # `sandbox serve`'s options, same defaults


def _say(text: str = "") -> None:
    click.echo(text)


def _check_ports(ports: dict[str, int]) -> None:
    busy = []
    for crm, port in ports.items():
        with socket.socket() as s, contextlib.suppress(OSError):
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(f"{port} ({crm})")
    if busy:
        raise click.ClickException(
            f"port {', '.join(busy)} is in use: is `crm-pipelines sandbox serve` or another demo running? Stop it "
            "first: the demo starts the sandboxes on these fixed ports so that runs launched later from the UI "
            "find them (`crm-pipelines sandbox serve` serves the same ones)")


def _short(path: Path) -> str:
    """``path`` relative to the working directory when inside it (shorter commands to copy), else absolute."""
    path = path.absolute()  # not resolved: a virtualenv's bin/ may hold symlinks
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def run_demo(opts: DemoOptions) -> None:
    if os.environ.get(STATE_DB_ENV):
        raise click.ClickException(
            f"{STATE_DB_ENV} is set: the demo starts from an empty state database of its own ({STATE_DB}) and "
            "would mix with that one; unset it for the demo (Dagster's storage still goes to PostgreSQL when the "
            "DAGSTER_PG_* variables are set)")
    _check_ports(opts.ports)
    DEMO_DIR.mkdir(exist_ok=True)
    LOG_FILE.unlink(missing_ok=True)
    STATE_DB.unlink(missing_ok=True)  # the sandboxes start over from the seed (--reset), so does the state
    dagster_yaml = prepare_home(DAGSTER_HOME)
    os.environ["DAGSTER_HOME"] = str(DAGSTER_HOME.resolve())
    batch_partition_events()
    settings_path = write_settings(SETTINGS_FILE, data_dir=opts.data_dir.resolve(), state_db=STATE_DB.resolve(),
                                   api_call_limit=opts.api_call_limit)  # fmt: skip
    _say("crm_pipelines demo: HubSpot, Salesforce and Dynamics 365 sandboxes kept in sync by Dagster runs.")
    _say(f"Dagster's own log (its DEBUG events) goes to {_short(LOG_FILE)}"
         + (" and here (--verbose)." if opts.verbose else "; --verbose shows it here too."))  # fmt: skip
    storage = "PostgreSQL storage from DAGSTER_PG_*" if uses_postgres() else "SQLite storage"
    _say(f"Dagster instance: {_short(DAGSTER_HOME)} ({storage}; per-connection pools in {_short(dagster_yaml)})")
    with stderr_to(LOG_FILE, verbose=opts.verbose):
        ports = [arg for crm, port in opts.ports.items() for arg in (f"--{crm}-port", str(port))]
        _say(f"\n1. Starting the sandboxes (seed {opts.seed}, {opts.scale:,} people, data in "
             f"{_short(opts.data_dir)}, regenerated) …")  # fmt: skip
        with running_sandboxes(CRMS, scale=opts.scale, seed=opts.seed, data_dir=opts.data_dir,
                               extra=(*ports, "--reset")) as info:  # fmt: skip
            _say("   " + ", ".join(f"{LABELS[c]} {info[c]['base_url']}" for c in CRMS))
            remember(DEMO_DIR, opts.data_dir, opts.scale, opts.seed, settings_path, opts.ports)
            failed = _pipeline(opts, info, settings_path)
            if opts.keep_serving:
                _closing(opts, failed)
                _say("The sandboxes keep serving on the same ports; Ctrl-C stops them.")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
    if not opts.keep_serving:
        _closing(opts, failed)
    if failed:
        raise click.ClickException(f"{failed} (the runs' logs: {_short(LOG_FILE)} and the Dagster UI)")


def _pipeline(opts: DemoOptions, info: dict, settings_path: Path) -> str:
    """Steps 2 to 7; returns what failed ('' when nothing did)."""
    from crm_pipelines.defs.extract.assets import build_extract_assets
    from crm_pipelines.defs.extract.backfill import bulk_import
    from crm_pipelines.defs.partitions import daily_partitions
    from crm_pipelines.defs.resources import build_resources
    from crm_pipelines.defs.unified.assets import build_unified_assets
    from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
    from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
    from crm_pipelines.settings import load_settings
    from crm_pipelines.state.db import create_state_engine

    settings = load_settings(settings_path)
    engine = create_state_engine(settings.state_database_url)
    extract = build_extract_assets(settings)
    resources = build_resources(settings, str(settings_path), state_url=settings.state_database_url)
    expected = expected_counts(info)
    days = len(daily_partitions(settings.extract).get_partition_keys())
    per_run = settings.extract.partitions_per_run
    runs = -(-days // per_run) + 1
    with dg.DagsterInstance.get() as instance:
        _say(f"\n2. Bulk import: a Dagster backfill of {days} daily partitions (the first holds all older history), "
             f"{per_run} a run, then the reference objects: {runs} runs")  # fmt: skip
        failed = []
        with live_progress(engine, expected):
            for n, run in enumerate(bulk_import(instance, settings, extract, resources), 1):
                done = sum(mirror_counts(engine, list(expected)).values())
                status = "ok" if run.result.success else f"FAILED: {'; '.join(run.failures())[:300]}"
                want = sum(expected.values())
                _say(f"{line_start()}   run {n} of {runs} ({run.label}): {status}; {done:,} of {want:,} fetched")
                if not run.result.success:
                    failed.append(f"bulk-import run {run.label}")
        for line in report.imported_lines(mirror_counts(engine, list(expected)), expected):
            _say(line)
        if failed:
            return "; ".join(failed) + " failed"

        unified, plans, writes = build_unified_assets(settings), build_plan_assets(), build_write_assets()
        _say("\n3. Transform (unified): identities, duplicates, stage mapping, field values, rollups")
        result = dg.materialize([unified], instance=instance, resources=resources, raise_on_error=False)
        if not result.success:
            return f"the transform run {result.run_id} failed"
        for line in report.transform_lines(engine):
            _say(line)

        _say("\n4. Plans: what the sync will write to each CRM, and why (examples: old → new, the rule)")
        result = dg.materialize([unified, plans], instance=instance, resources=resources,
                                selection=list(PLANS.values()), raise_on_error=False)  # fmt: skip
        if not result.success:
            return f"the plans run {result.run_id} failed"
        for line in report.plan_lines(engine):
            _say(line)

        _say("\n5. Writes (the sandboxes' connections write; a real CRM's only after `writes: on`, OPS-10)")
        result = dg.materialize([unified, plans, *writes], instance=instance, resources=resources,
                                selection=list(WRITES.values()), raise_on_error=False)  # fmt: skip
        if not result.success:
            return f"the writes run {result.run_id} failed"
        written = {crm: _values(e.materialization.metadata) for e in result.get_asset_materialization_events()
                   for crm, key in WRITES.items() if key == e.asset_key}  # fmt: skip
        for line in report.write_lines(engine, written):
            _say(line)
        return _edits_and_sync(opts, info, settings, settings_path, engine, instance)


def _values(metadata: dict) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _edits_and_sync(opts: DemoOptions, info: dict, settings, settings_path: Path, engine,
                    instance: dg.DagsterInstance) -> str:
    """Steps 6 and 7: the edits, the sync passes until they arrived, the arrivals and the budget."""
    from crm_pipelines.defs.sync.run_now import sync_once
    from crm_pipelines.demo_edits import ArrivalWatch, arrival_line, conflict_line, describe_edit, make_edits

    _say("\n6. Edits made in the sandboxes' UIs, as a person would (through /__sandbox__/ui/…):")
    edits, conflict = make_edits(info, engine, opts.seed)
    for e in edits:
        _say(f"   {describe_edit(e)}")
    if conflict is not None:
        _say(f"   and a conflict: {describe_edit(conflict.hubspot)}, then {describe_edit(conflict.salesforce)}")
    # The sync runs here as `crm-pipelines sync` does: the change sensor's own tick (the same code the daemon
    # evaluates) and the runs it requests, executed in this process, pass after pass until the edits arrived.
    # Not `dagster-daemon`: it would add a code server and run workers starting on a loaded machine, its runs
    # could outlive an interrupted demo, and on SQLite it would share the instance's files with this process;
    # the foreground loop is bounded, needs no PostgreSQL, and its runs are the same tagged runs in the UI.
    _say("\n7. The sync: the change sensor's tick and the runs it requests (extract what changed, unified, plans, "
         "writes), run in the foreground until every edit arrived")  # fmt: skip
    failed: list[str] = []
    started = time.monotonic()
    with ArrivalWatch(settings, edits, conflict) as watch:
        n = 0
        while not watch.done() and time.monotonic() - started < opts.sync_timeout_s:
            n += 1
            said: list[str] = []
            t0 = time.monotonic()
            done = sync_once(instance, str(settings_path), said.append)
            for line in said:
                print(f"crm-pipelines demo: sync pass {n}: {line}", file=sys.stderr, flush=True)  # into the log
            failed += done.failed
            wrote = ", ".join(f"{LABELS[c]} {m.get('created', 0)} created / {m.get('updated', 0)} updated"
                              for c, m in done.writes.items())  # fmt: skip
            quiet = "nothing changed" if any("nothing changed" in s for s in said) else "nothing to write"
            _say(f"   pass {n} ({time.monotonic() - t0:.0f} s): {f'wrote {wrote}' if done.writes else quiet}")
            watch.settle()
            if not done.writes and not watch.done():
                time.sleep(2)  # nothing in flight: give the CRMs' counts a moment before the next tick
        watch.settle()
    _say("   Arrivals (edit → read back through the target CRM's API):")
    for e in edits:
        _say(f"   {arrival_line(e)}")
    if conflict is not None:
        _say(f"   Conflict: {conflict_line(conflict, settings)}")
    _say("\n8. API calls in the last 24 h against each connection's limit (api_call_limit, OPS-2):")
    for line in report.budget_lines(engine, settings):
        _say(line)
    if watch.error:
        print(f"crm-pipelines demo: last read error of the arrival watch: {watch.error}", file=sys.stderr)
    missing = [e for e in edits if not e.arrived()]
    if failed:
        return f"{len(failed)} sync run(s) failed: {'; '.join(failed)}"
    if missing or (conflict is not None and conflict.winner() is None):
        return f"{len(missing)} edit(s) had not arrived after {opts.sync_timeout_s:.0f} s"
    return ""


def _closing(opts: DemoOptions, failed: str) -> None:
    events = event_lines(LOG_FILE)
    bin_dir = Path(sys.executable).parent
    took = time.monotonic() - opts.started
    outcome = "Done" if not failed else f"Stopped: {failed}"
    _say(f"\n{outcome} after {took // 60:.0f} min {took % 60:.0f} s. Dagster's log: {_short(LOG_FILE)} "
         f"({events} DEBUG event lines).")
    _say("\nOpen the Dagster UI on exactly this state (its sandboxes, then the UI; Ctrl-C stops both):")
    _say(f"  {_short(bin_dir / 'crm-pipelines')} demo --ui")
    _say(f"  then {UI_URL} → Assets → writeback/salesforce_plan (what the sync wrote, old → new, and why), its")
    _say("  checks, and Runs (the bulk import's runs and the sync's, tagged crm_pipelines/kind).")
    for line in by_hand(DEMO_DIR, bin_dir):
        _say(line)
    _say("Its daemon runs the change sensor: an edit made in a sandbox now reaches the other CRMs by itself."
         + ("" if opts.keep_serving else " Nothing the demo started is still running."))  # fmt: skip

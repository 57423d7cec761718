"""``crm-pipelines demo --ui``: the Dagster UI on exactly the state the last demo left (issue 15).

One command: the sandboxes on the demo's ports and data directory (not regenerated), then ``dagster dev`` on the
demo's instance and settings. Ctrl-C stops both. ``dagster dev`` runs in a session of its own and is stopped
with its whole process group (webserver, daemon, code servers): SIGTERM, then SIGKILL after ``STOP_S`` as a last
resort.

Why ``dagster dev`` ignored SIGINT and SIGTERM (issue 15): a process started with SIGINT ignored (a shell's
background job, ``nohup``-style launchers, some CI runners) passes that on to its children, and ``dagster dev``
copies SIGINT's disposition to SIGTERM (``dagster._utils.interrupts.setup_interrupt_handlers``), so it then ignores
both. ``start_dagster_dev`` gives it SIGINT at its default, as a terminal would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from crm_pipelines.dagster_events import PARTITION_EVENT_SETTINGS
from crm_pipelines.demo_instance import REPO
from crm_pipelines.settings.load import SETTINGS_ENV

STATE_FILE = "demo.json"
STOP_S = 10
UI_PORT = 3000


def remember(demo_dir: Path, data_dir: Path, scale: int, seed: int, settings_path: Path,
             ports: dict[str, int]) -> None:
    """What ``--ui`` needs to find the demo's state again (the sandboxes refuse another seed or scale)."""
    (demo_dir / STATE_FILE).write_text(json.dumps({
        "data_dir": str(data_dir.resolve()), "scale": scale, "seed": seed, "settings": str(settings_path.resolve()),
        "dagster_home": os.environ["DAGSTER_HOME"], "ports": ports}, indent=2))  # fmt: skip


def _port_args(state: dict) -> list[str]:
    return [arg for crm, port in state["ports"].items() for arg in (f"--{crm}-port", str(port))]


def _state(demo_dir: Path) -> dict:
    path = demo_dir / STATE_FILE
    if not path.exists():
        raise click.ClickException(f"no demo state in {demo_dir}: run `crm-pipelines demo` (or `make demo`) first")
    return json.loads(path.read_text())


def _environment(state: dict) -> dict[str, str]:
    return {"DAGSTER_HOME": state["dagster_home"], SETTINGS_ENV: state["settings"], **PARTITION_EVENT_SETTINGS}


def by_hand(demo_dir: Path, bin_dir: Path) -> list[str]:
    """The two commands ``--ui`` runs, for a user who wants them in their own terminals."""
    state = _state(demo_dir)
    env = " ".join(f"{k}={v}" for k, v in _environment(state).items())
    serve = (f"{bin_dir / 'crm-pipelines'} sandbox serve --scale {state['scale']} --seed {state['seed']} "
             f"--data-dir {state['data_dir']} {' '.join(_port_args(state))}")
    return [f"  The same by hand, in two terminals (from this directory): {serve} and",
            f"    {env} \\", f"      {bin_dir / 'dagster'} dev -w {REPO / 'workspace.yaml'} -p {UI_PORT}"]  # fmt: skip


def serve_ui(demo_dir: Path) -> None:
    from crm_pipelines.demo import CRMS
    from crm_pipelines.sandbox.launch import running_sandboxes

    state = _state(demo_dir)
    _fail_abandoned_runs(state)
    # a `kill` stops the UI and the sandboxes as Ctrl-C does, rather than leaving them behind
    signal.signal(signal.SIGTERM, _interrupt)
    log = (demo_dir / "demo.log").open("a")  # the sandboxes' own lines: the terminal is the UI's
    with log, running_sandboxes(CRMS, scale=state["scale"], seed=state["seed"], data_dir=Path(state["data_dir"]),
                                extra=tuple(_port_args(state)), stderr=log):  # fmt: skip
        click.echo(f"Sandboxes up on ports {', '.join(map(str, state['ports'].values()))}; starting the Dagster UI on "
                   f"http://127.0.0.1:{UI_PORT} (Ctrl-C stops both) …")  # fmt: skip
        ui = start_dagster_dev(["-w", str(REPO / "workspace.yaml"), "-p", str(UI_PORT)],
                               env={**os.environ, **_environment(state)})
        try:
            ui.wait()
        except KeyboardInterrupt:
            pass
        finally:
            _stop(ui)


def start_dagster_dev(args: list[str], **popen: Any) -> subprocess.Popen:
    """``dagster dev ARGS`` in a session of its own, with SIGINT at its default whatever this process inherited,
    so that SIGINT and SIGTERM stop it (the module docstring says why they otherwise may not)."""
    return subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", *args], start_new_session=True,
                            preexec_fn=_default_sigint, **popen)


def _default_sigint() -> None:
    # runs in the child between fork and exec (Popen's preexec_fn): one sigaction and nothing else
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _fail_abandoned_runs(state: dict) -> None:
    """Runs a previous UI session left in progress when it was stopped (their workers died with it) are marked
    failed, and their pool slots freed: else the change sensor would wait for them forever (one sync run at a
    time) and the pools would stay taken. Nothing else runs on the demo's instance while ``--ui`` starts."""
    import dagster as dg

    running = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    os.environ["DAGSTER_HOME"] = state["dagster_home"]
    with dg.DagsterInstance.get() as instance:  # queued runs are left: the new daemon launches them
        for run in instance.get_runs(dg.RunsFilter(statuses=running)):
            instance.report_run_failed(run)
            with contextlib.suppress(Exception):
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

"""Issue 15: ``crm-pipelines demo`` (``make demo``) as a new user meets it: run in an empty directory, it ends
successfully and says per step what happened in a few dozen lines; Dagster's DEBUG events go to the log file it
names; the edits it makes in the sandboxes arrive in the other CRMs, each with its time, and the conflict names
its winner; its Dagster instance has a ``dagster.yaml`` with the per-connection pools."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from crm_pipelines.demo_instance import PG_VARIABLES, prepare_home

SCALE = 300  # people: the whole demo in a minute or two on a quiet machine
MOST_LINES = 80
DEMO_TIMEOUT_S = 840
DEBUG = r" - (\x1b\[[0-9;]*m)?DEBUG(\x1b\[[0-9;]*m)? - "  # Dagster's console format, coloured or not


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The demo in a fresh directory, on SQLite (no DAGSTER_PG_*, as on a fresh clone), on free ports (another
    sandbox may hold the default ones on a shared machine)."""
    cwd = tmp_path_factory.mktemp("demo")
    drop = {*PG_VARIABLES, "DAGSTER_HOME", "CRM_PIPELINES_SETTINGS", "CRM_PIPELINES_STATE_DB_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    ports = _free_ports(3)
    args = ["--scale", str(SCALE), "--hubspot-port", str(ports[0]), "--salesforce-port", str(ports[1]),
            "--dynamics-port", str(ports[2])]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "demo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)  # fmt: skip
    return cwd, done


def _failure(cwd: Path, done: subprocess.CompletedProcess) -> str:
    log = cwd / ".crm_pipelines" / "demo.log"
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    return f"exit {done.returncode}\nSTDOUT:\n{done.stdout}\nSTDERR:\n{done.stderr[-2000:]}\nLOG:\n{tail}"


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_issue15_the_demo_says_per_step_what_happened_in_few_lines(demo_run) -> None:
    cwd, done = demo_run
    assert done.returncode == 0, _failure(cwd, done)
    out = done.stdout
    lines = out.splitlines()
    assert len(lines) < MOST_LINES, out
    assert not re.search(DEBUG, out)  # Dagster's events are not on the terminal
    imported = dict(re.findall(r"^\s+(HubSpot|Salesforce|Dynamics): ([\d,]+) records imported", out, re.M))
    assert set(imported) == {"HubSpot", "Salesforce", "Dynamics"}, out
    assert all(int(n.replace(",", "")) > 0 for n in imported.values()), out
    assert re.search(r"[\d,]+ contact records form [\d,]+ people", out), out
    assert re.search(r"duplicate emails inside one CRM", out) and re.search(r"deals in stages without a mapping", out)
    for crm in ("HubSpot", "Salesforce", "Dynamics"):  # the plans and the writes, per CRM
        assert re.search(rf"^\s+{crm}: [\d,]+ records to create .*field updates", out, re.M), out
        assert re.search(rf"^\s+{crm}: [\d,]+ created, [\d,]+ updated", out, re.M), out
    plans = out.split("4. Plans", 1)[1].split("5. Writes", 1)[0]
    assert re.search(r"^ {6}\w+ \S+ \S+: .+ → .+ \(.+\)$", plans, re.M), out  # examples: old → new (the rule)
    # API calls against each connection's limit (OPS-2)
    assert re.search(r"HubSpot [\d,]+ of 10,000 .*Salesforce [\d,]+ of 10,000 .*Dynamics [\d,]+ of 10,000", out), out


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_issue15_the_demo_edits_arrive_with_their_times_and_the_conflict_names_its_winner(demo_run) -> None:
    cwd, done = demo_run
    assert done.returncode == 0, _failure(cwd, done)
    arrivals = done.stdout.split("Arrivals", 1)[1]
    timed = re.findall(r"^\s+(HubSpot|Salesforce|Dynamics) \w+ \S+: \S+ → '[^']+': (.+)$", arrivals, re.M)
    assert {source for source, _ in timed} == {"HubSpot", "Salesforce", "Dynamics"}, arrivals  # edits in each
    for _, where in timed:
        assert "NOT ARRIVED" not in where and re.search(r"after \d+\.\d s", where), arrivals
    winner = re.search(r"Conflict: .*Winner: (HubSpot|Salesforce); (HubSpot|Salesforce) now reads '([^']+)'", arrivals)
    assert winner, arrivals
    assert winner.group(1) == "HubSpot"  # CONF-2: edits seconds apart are within the window, the default app wins


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_issue15_the_demo_names_its_log_and_leaves_an_instance_with_the_pools(demo_run) -> None:
    cwd, done = demo_run
    assert done.returncode == 0, _failure(cwd, done)
    named = re.search(r"Dagster's log: (\S+) \((\d+) DEBUG event lines\)", done.stdout)
    assert named, done.stdout
    log = cwd / named.group(1)
    assert log.exists()
    debug = [line for line in log.read_text(errors="replace").split("\n") if re.search(DEBUG, line)]
    assert len(debug) == int(named.group(2)) > 50  # the events the terminal was spared
    config = yaml.safe_load((cwd / ".dagster_home" / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1  # one step per connection at a time
    assert "storage" not in config  # SQLite: Dagster's files in the directory
    with dg.DagsterInstance.from_config(str(cwd / ".dagster_home")) as instance:  # the UI's view: the demo's runs
        runs = instance.get_runs()
        assert len(runs) >= 6 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert "demo --ui" in done.stdout and "http://127.0.0.1:3000" in done.stdout


def test_issue15_the_demo_instance_stores_in_postgresql_when_the_variables_are_set(
    pg_url: str, tmp_path: Path
) -> None:
    """With DAGSTER_PG_* set (``make test`` sets them), the demo's ``dagster.yaml`` keeps the project's PostgreSQL
    storage, naming the variables (never their values), and the instance loads from it."""
    assert all(os.environ.get(v) for v in PG_VARIABLES)
    path = prepare_home(tmp_path / "home")
    text = path.read_text()
    assert "postgres" in yaml.safe_load(text)["storage"]
    assert os.environ["DAGSTER_PG_PASSWORD"] not in text
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        instance.get_runs(limit=1)

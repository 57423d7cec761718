"""The Dagster processes a deployment runs, started for the browser test: ``dagster-webserver`` and
``dagster-daemon`` on one instance and the project's code location, each in its own process group so that
stopping it also stops the code server and the runs it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from crm_pipelines.settings.load import SETTINGS_ENV

REPO = Path(__file__).resolve().parents[2]
LOCATION = "crm_pipelines"
BIN = Path(sys.executable).parent

LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

DAEMON_QUERY = '{ instance { daemonHealth { daemonStatus(daemonType: "%s") { healthy } } } }'


def write_workspace(path: Path) -> Path:
    """The project's code location, as ``workspace.yaml`` names it, loaded from this checkout."""
    module = {"module_name": "crm_pipelines.definitions", "working_directory": str(REPO), "location_name": LOCATION}
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": module}]}))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, settings: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), SETTINGS_ENV: str(settings)}


def start_webserver(home: Path, settings: Path, workspace: Path, port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env=_env(home, settings), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def start_daemon(home: Path, settings: Path, workspace: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env=_env(home, settings),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (the server, its code server, run workers), SIGKILL after 20 s; a
    server left running would hold its port and the test database past the run (and CI's clean-up)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; children that ignored SIGTERM are not
            os.killpg(proc.pid, signal.SIGKILL)
        return


def wait_until_loaded(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Until the webserver answers and has loaded the code location; a load error fails with its message."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dagster-webserver exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            answer = httpx.post(f"{url}/graphql", json={"query": LOCATION_QUERY}, timeout=10).json()
            entries = answer["data"]["workspaceOrError"].get("locationEntries", [])
            found = [e for e in entries if e["name"] == LOCATION]
            if found and found[0]["loadStatus"] == "LOADED":
                loaded = found[0]["locationOrLoadError"]
                assert loaded["__typename"] != "PythonError", f"{LOCATION} failed to load: {loaded['message']}"
                return
            last = str(answer)
        except (httpx.HTTPError, KeyError, ValueError) as error:
            last = repr(error)
        time.sleep(1)
    raise AssertionError(f"dagster-webserver did not load {LOCATION} in {timeout:.0f} s ({last}):\n"
                         f"{log.read_text()[-3000:]}")  # fmt: skip


def wait_until_healthy(url: str, daemon: subprocess.Popen, log: Path, daemon_type: str = "BACKFILL",
                       timeout: float = 180) -> None:
    """Until the webserver reports ``daemon_type``'s heartbeat healthy: what the UI checks before it warns that
    the daemon is not running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise AssertionError(f"dagster-daemon exited ({daemon.returncode}):\n{log.read_text()[-3000:]}")
        try:
            answer = httpx.post(f"{url}/graphql", json={"query": DAEMON_QUERY % daemon_type}, timeout=10).json()
            if answer["data"]["instance"]["daemonHealth"]["daemonStatus"]["healthy"]:
                return
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"the {daemon_type} daemon was not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")

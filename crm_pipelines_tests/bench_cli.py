"""Running a ``crm-pipelines bench`` subcommand as a user does, and reading its figures (its last line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def bench_run(*args: str, timeout: int = 900) -> tuple[dict[str, Any], str]:
    """``crm-pipelines bench ARGS...`` in a subprocess: the JSON object it printed last, and everything it printed
    (standard output and error). Fails with the end of its standard error when it exits non-zero."""
    done = subprocess.run([str(Path(sys.executable).parent / "crm-pipelines"), "bench", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr


def bench_figures(*args: str, timeout: int = 900) -> dict[str, Any]:
    """``bench_run``'s figures."""
    return bench_run(*args, timeout=timeout)[0]

"""Fresh sandboxes in their own process for a benchmark: started, announced, and always stopped."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def running_sandboxes(crms: list[str], *, scale: int, seed: int, extra: tuple[str, ...] = ()) -> Iterator[dict]:
    """``crm-pipelines sandbox serve --json`` for ``crms`` on free ports; yields its announcement line."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as data_dir:
        ports = [arg for crm in crms for arg in (f"--{crm}-port", "0")]
        only = [arg for crm in crms for arg in ("--only", crm)]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crm_pipelines.cli",
                "sandbox",
                "serve",
                *only,
                *ports,
                "--data-dir",
                data_dir,
                "--seed",
                str(seed),
                "--scale",
                str(scale),
                "--json",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the sandboxes exited with {proc.wait()} before announcing themselves")
            info = json.loads(line)
            info["pid"] = proc.pid
            yield info
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

"""Sandboxes in their own process (benchmarks, the demo): started, announced, and always stopped."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def running_sandboxes(
    crms: list[str],
    *,
    scale: int,
    seed: int,
    extra: tuple[str, ...] = (),
    data_dir: Path | None = None,
    stderr: IO | int | None = None,
) -> Iterator[dict]:
    """``crm-pipelines sandbox serve --json`` for ``crms`` on free ports; yields its announcement line plus
    ``pid``. Data goes to ``data_dir`` (kept) or a temporary directory (removed)."""
    with tempfile.TemporaryDirectory(prefix="crm-sandbox-") as tmp:
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
                str(data_dir or tmp),
                "--seed",
                str(seed),
                "--scale",
                str(scale),
                "--json",
                # Benchmarks and the demo must not wait on simulated job run times (they measure the sync).
                "--salesforce-bulk-seconds",
                "0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=sys.stderr if stderr is None else stderr,
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

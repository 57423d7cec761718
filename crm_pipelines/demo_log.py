"""Where the demo's noise goes: Dagster's DEBUG events, the sandboxes' and Python's warnings (issue 15).

Dagster's console logger, the in-process runs and the sandboxes all write to file descriptor 2, some from
threads and child processes that Python's ``sys.stderr`` never sees; so the descriptor itself is pointed at
the log file (quiet) or at a pipe copied to both the log file and the terminal (``--verbose``). The demo's
own lines go to standard output, which stays on the terminal either way.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def stderr_to(log_path: Path, *, verbose: bool) -> Iterator[None]:
    """While inside: descriptor 2 writes into ``log_path`` (appended), and also to the terminal if ``verbose``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed below, after the copying thread ends
    copier: threading.Thread | None = None
    pipe_write = -1
    try:
        if verbose:
            pipe_read, pipe_write = os.pipe()
            copier = threading.Thread(target=_copy, args=(pipe_read, log, saved), daemon=True)
            copier.start()
            os.dup2(pipe_write, 2)
        else:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        if copier is not None:
            os.close(pipe_write)  # the copier sees the end of the pipe once no one else holds it open
            copier.join(timeout=5)
        os.close(saved)
        log.close()


def _copy(pipe_read: int, log, terminal: int) -> None:
    with os.fdopen(pipe_read, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            log.write(chunk)
            os.write(terminal, chunk)


# Dagster's console format, `<time> - dagster - DEBUG - <event>`, the level coloured when a terminal is near
DEBUG_LINE = re.compile(rb" - (?:\x1b\[[0-9;]*m)?DEBUG(?:\x1b\[[0-9;]*m)? - ")


def event_lines(log_path: Path) -> int:
    """How many of Dagster's DEBUG event lines the log holds (for the closing line)."""
    if not log_path.exists():
        return 0
    with log_path.open("rb") as f:
        return sum(DEBUG_LINE.search(line) is not None for line in f)

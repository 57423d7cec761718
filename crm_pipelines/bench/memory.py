"""Peak resident memory of a process, for the benchmarks' ``peak_rss_mb``."""

from __future__ import annotations

from pathlib import Path

import psutil


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM, the high-water mark of resident memory (current RSS where /proc is not available)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    process = psutil.Process() if pid == "self" else psutil.Process(int(pid))
    return round(process.memory_info().rss / 2**20, 1)

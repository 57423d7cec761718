"""``crm-pipelines bench sandbox``: can the sandbox feed a sync faster than any real API would?

Starts ``crm-pipelines sandbox serve`` as its own process (so its memory is measured alone), waits for
it to generate the universe, then pages every contact through the list endpoint over loopback HTTP with
rate limits lifted, exactly as a full-read client would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

PAGE_SIZE = 100  # the list endpoint's maximum (FACTS §1)


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the high-water mark of resident memory, generation included."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def run_paging_bench(crm: str, scale: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as data_dir:
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crm_pipelines.cli",
                "sandbox",
                "serve",
                "--only",
                crm,
                f"--{crm}-port",
                "0",
                "--data-dir",
                data_dir,
                "--seed",
                str(seed),
                "--scale",
                str(scale),
                "--no-rate-limits",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            seed_seconds = time.monotonic() - started
            base = info[crm]["base_url"]
            token = info[crm]["credentials"]["access_token"]
            expected = httpx.get(f"{base}/__sandbox__/stats").json()["contacts"]["live"]
            records, pages = 0, 0
            t0 = time.perf_counter()
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client:
                after: str | None = None
                while True:
                    params = {"limit": PAGE_SIZE, "properties": "email,firstname,lastname,lastmodifieddate"}
                    if after:
                        params["after"] = after
                    response = await client.get("/crm/v3/objects/contacts", params=params)
                    response.raise_for_status()
                    body = response.json()
                    records += len(body["results"])
                    pages += 1
                    after = body.get("paging", {}).get("next", {}).get("after")
                    if not after:
                        break
            elapsed = time.perf_counter() - t0
            peak = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "crm": crm,
        "scale": scale,
        "records": records,
        "expected_records": expected,
        "pages": pages,
        "seconds": round(elapsed, 2),
        "records_per_s": round(records / elapsed, 1),
        "seed_seconds": round(seed_seconds, 1),
        "peak_rss_mb": peak,
    }

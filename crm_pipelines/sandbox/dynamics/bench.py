"""Paging benchmark for the Dynamics sandbox: every contact through ``GET contacts`` with 5,000-row pages.

Same shape of figures as ``crm_pipelines.bench.sandbox_paging`` (HubSpot), so ``crm-pipelines bench sandbox
--crm dynamics`` can report it: the sandbox runs as its own process with limits lifted, the client follows
``@odata.nextLink`` exactly as a full-read sync would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import httpx

from crm_pipelines.bench.sandbox_paging import _peak_rss_mb

SELECT = "fullname,emailaddress1,modifiedon,_parentcustomerid_value"


async def run_dynamics_paging_bench(scale: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as data_dir:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_pipelines.cli", "sandbox", "serve", "--only", "dynamics",
             "--dynamics-port", "0", "--data-dir", data_dir, "--seed", str(seed), "--scale", str(scale),
             "--no-rate-limits", "--json"],
            stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            seed_seconds = time.monotonic() - started
            base = info["dynamics"]["base_url"]
            creds = info["dynamics"]["credentials"]
            expected = httpx.get(f"{base}/__sandbox__/stats").json()["contacts"]["live"]
            records = pages = 0
            t0 = time.perf_counter()
            headers = {"Authorization": f"Bearer {creds['access_token']}", "Prefer": "odata.maxpagesize=5000"}
            async with httpx.AsyncClient(headers=headers, timeout=120) as client:
                url: str | None = f"{creds['api_url']}/contacts"
                params: dict[str, str] | None = {"$select": SELECT}
                while url:
                    response = await client.get(url, params=params)
                    response.raise_for_status()
                    body = response.json()
                    records += len(body["value"])
                    pages += 1
                    url, params = body.get("@odata.nextLink"), None
            elapsed = time.perf_counter() - t0
            peak = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"crm": "dynamics", "scale": scale, "records": records, "expected_records": expected, "pages": pages,
            "seconds": round(elapsed, 2), "records_per_s": round(records / elapsed, 1),
            "seed_seconds": round(seed_seconds, 1), "peak_rss_mb": peak}


if __name__ == "__main__":
    import asyncio

    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    sys.stdout.write(json.dumps(asyncio.run(run_dynamics_paging_bench(scale, 42))) + "\n")

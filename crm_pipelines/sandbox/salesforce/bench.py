"""The Salesforce half of ``crm-pipelines bench sandbox``: every Contact through ``query`` + ``nextRecordsUrl``.

Same procedure and figures as ``crm_pipelines.bench.sandbox_paging`` (its own process, limits lifted, plain
loopback HTTP), so the integrator can dispatch ``--crm salesforce`` here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import httpx

from crm_pipelines.bench.sandbox_paging import _peak_rss_mb
from crm_pipelines.sandbox.salesforce.catalog import LATEST

SOQL = "SELECT Id, Email, FirstName, LastName, AccountId, SystemModstamp FROM Contact"


async def run_query_bench(scale: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as data_dir:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_pipelines.cli", "sandbox", "serve", "--only", "salesforce",
             "--salesforce-port", "0", "--data-dir", data_dir, "--seed", str(seed), "--scale", str(scale),
             "--no-rate-limits", "--json"],
            stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())["salesforce"]
            seed_seconds = time.monotonic() - started
            base = info["base_url"]
            expected = httpx.get(f"{base}/__sandbox__/stats").json()["Contact"]["live"]
            records = pages = 0
            t0 = time.perf_counter()
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {info['credentials']['access_token']}"},
                timeout=120,
            ) as client:
                response = await client.get(f"/services/data/v{LATEST}/query", params={"q": SOQL})
                while True:
                    response.raise_for_status()
                    body = response.json()
                    records += len(body["records"])
                    pages += 1
                    if body["done"]:
                        break
                    response = await client.get(body["nextRecordsUrl"])
            elapsed = time.perf_counter() - t0
            peak = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {
        "crm": "salesforce",
        "scale": scale,
        "records": records,
        "expected_records": expected,
        "pages": pages,
        "seconds": round(elapsed, 2),
        "records_per_s": round(records / elapsed, 1),
        "seed_seconds": round(seed_seconds, 1),
        "peak_rss_mb": peak,
    }


if __name__ == "__main__":  # python -m crm_pipelines.sandbox.salesforce.bench [scale]
    import asyncio

    print(json.dumps(asyncio.run(run_query_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, 42))))

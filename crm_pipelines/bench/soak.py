"""``crm-pipelines bench soak``: the bulk import on a bad day. It runs twice on the same sandboxes (one data
seed): fault-free, then with every fault kind the sandboxes inject, on every endpoint, token endpoints
included (issue 18) — and the faulted import must end where the fault-free one did, without failed runs.

Each pass is ``bench extract``'s import (its lanes, fresh state database and Dagster storage, the CRMs side
by side), with two differences: a failed run is counted and the lane goes on, and HubSpot is connected
through its OAuth app (the refresh-token flow) so that each CRM's login meets the faults.

Figures (last line of output): ``records`` (mirror rows after the faulted import) against
``source_records`` (the sandboxes' own counts); ``failed_runs`` (faulted pass; target 0) and
``fault_free_failed_runs``; ``token_calls`` (logins: tokens obtained from a token endpoint, all
connections) against ``runs`` (target: at most one per connection per run, plus expiries) and
``token_requests`` (every request the token endpoints received, faulted attempts included); ``wall_s``
against ``fault_free_wall_s`` (target ratio at most 2); ``mirror_equal``: 1 when every mirror table equals
the fault-free import's row for row (all columns but the time of extraction).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
import yaml

from crm_pipelines.bench.extract import (
    Lane,
    _dagster_home,
    _environment,
    _fresh_database,
    _run_lane,
    _sandboxes_apart,
    _source_counts,
)
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines.sandbox.endpoints import ENDPOINTS_FILE
from crm_pipelines.sandbox.faults import FaultConfig
from crm_pipelines.sandbox.universe import TIME_RANGE
from crm_pipelines.settings.load import STATE_DB_ENV
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.state.schema import MIRROR_TABLES

CRMS = ["hubspot", "salesforce", "dynamics"]
# Issue 18's bad day: 38 % of calls fail, each kind at its own rate.
FAULT_MIX = {
    "rate_429": 0.10,
    "rate_500": 0.10,
    "rate_503": 0.05,
    "rate_timeout": 0.03,
    "rate_drop": 0.05,
    "rate_malformed": 0.05,
}


@dataclass
class Pass:
    wall_s: float
    lanes: dict[str, dict[str, Any]]
    mirror: dict[str, tuple[int, str]]  # table -> (rows, digest of its rows)
    token_requests: int
    api_requests: int


def _soak_lane(lane: Lane) -> dict:
    """``bench extract``'s lane, and the logins its process made (``crm/tokens.py`` counts them)."""
    figures = _run_lane(lane)
    figures["logins"] = dict(TOKENS.logins)
    return figures


def _hubspot_oauth(info: dict) -> dict[str, str]:
    """The ``hubspot`` resource's fields for the HubSpot sandbox's OAuth app (sandbox credentials, in memory)."""
    oauth = info["hubspot"]["credentials"]["oauth"]
    return {
        "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"],
        "refresh_token": oauth["refresh_token"],
    }


def _usage(info: dict) -> tuple[int, int]:
    """Requests the sandboxes' APIs have received (token endpoints, and all), faulted ones included."""
    tokens = total = 0
    for crm in CRMS:
        usage = httpx.get(f"{info[crm]['base_url']}/__sandbox__/usage", verify=False).json()
        total += usage["total"]
        tokens += sum(n for endpoint, n in usage["endpoints"].items() if endpoint.endswith("/token"))
    return tokens, total


def _set_faults(info: dict, config: dict[str, Any] | None) -> None:
    for crm in CRMS:
        url = f"{info[crm]['base_url']}/__sandbox__/faults"
        if config is None:
            httpx.delete(url, verify=False).raise_for_status()
        else:
            current = httpx.get(url, verify=False).json()  # keeps the rate-limit settings as they are
            httpx.put(url, json={**current, **config}, verify=False).raise_for_status()


def _mirror(state_url: str) -> dict[str, tuple[int, str]]:
    """Each mirror table's row count and a digest of its rows in id order, every column but extracted_at."""
    engine = create_state_engine(state_url)
    tables: dict[str, tuple[int, str]] = {}
    try:
        with engine.connect() as conn:
            for (crm, obj), table in MIRROR_TABLES.items():
                if crm not in CRMS:
                    continue
                digest, rows = hashlib.sha256(), 0
                columns = [c for c in table.c if c.name != "extracted_at"]
                for row in conn.execute(sa.select(*columns).order_by(table.c.id)):
                    digest.update(orjson.dumps(list(row), option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC))
                    rows += 1
                tables[f"{crm}.{obj}"] = (rows, digest.hexdigest())
    finally:
        engine.dispose()
    return tables


def _import_pass(info: dict, database_url: str | None, start_date: str | None) -> Pass:
    """The bulk import into a fresh state database, each CRM's runs in a fresh process, side by side."""
    tokens_before, calls_before = _usage(info)
    with (
        _fresh_database(database_url) as state_url,
        tempfile.TemporaryDirectory(prefix="crm-soak-") as tmp,
        _environment(**{STATE_DB_ENV: state_url}),
    ):
        data_dir = Path(tmp)
        (data_dir / ENDPOINTS_FILE).write_text(json.dumps(info))
        settings_path = data_dir / "settings.yaml"
        settings_path.write_text(
            yaml.safe_dump(
                {
                    "sandbox": {"data_dir": str(data_dir)},
                    # HubSpot as an OAuth app at the sandbox's address: its login is a token request too
                    "connections": {"hubspot": {"base_url": info["hubspot"]["base_url"]}},
                    "extract": {"start_date": start_date or TIME_RANGE[0].date().isoformat()},
                }
            )
        )
        with _dagster_home(database_url) as home:
            secrets = {"hubspot": _hubspot_oauth(info)}
            lanes = [Lane(crm, str(settings_path), home, keep_going=True, secrets=secrets.get(crm, {})) for crm in CRMS]
            started = time.perf_counter()
            # spawned, not forked: each lane starts clean (no token kept), as a run worker does
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(lanes), mp_context=context) as pool:
                done = dict(zip(CRMS, pool.map(_soak_lane, lanes), strict=True))
            wall = time.perf_counter() - started
        mirror = _mirror(state_url)
    tokens_after, calls_after = _usage(info)
    return Pass(wall, done, mirror, tokens_after - tokens_before, calls_after - calls_before)


def run_soak_bench(
    scale: int,
    seed: int,
    fault_seed: int,
    database_url: str | None = None,
    start_date: str | None = None,
    timeout_seconds: float | None = None,
) -> dict:
    """``timeout_seconds``: how long the sandboxes hold a request they time out (their default, 30 s, when
    None); the connectors wait up to their own 60 s timeout, so a held request ends as the server's 504."""
    held = timeout_seconds if timeout_seconds is not None else FaultConfig().timeout_seconds
    faults: dict[str, Any] = {**FAULT_MIX, "seed": fault_seed, "timeout_seconds": held}
    with _sandboxes_apart(CRMS, scale, seed) as info:
        clean = _import_pass(info, database_url, start_date)
        _set_faults(info, faults)
        try:
            faulted = _import_pass(info, database_url, start_date)
        finally:
            _set_faults(info, None)
        source = _source_counts(info)
    records = sum(rows for key, (rows, _) in faulted.mirror.items() if tuple(key.split(".", 1)) in source)
    differing = sorted(table for table, rows in faulted.mirror.items() if clean.mirror.get(table) != rows)
    return {
        "scale": scale,
        "seed": seed,
        "fault_seed": fault_seed,
        "faults": faults,
        "records": records,
        "source_records": sum(source.values()),
        "failed_runs": sum(len(lane["failed_runs"]) for lane in faulted.lanes.values()),
        "fault_free_failed_runs": sum(len(lane["failed_runs"]) for lane in clean.lanes.values()),
        "runs": sum(lane["all_runs"] for lane in faulted.lanes.values()),
        "token_calls": sum(sum(lane["logins"].values()) for lane in faulted.lanes.values()),
        "token_calls_by_crm": {crm: sum(lane["logins"].values()) for crm, lane in faulted.lanes.items()},
        "fault_free_token_calls": sum(sum(lane["logins"].values()) for lane in clean.lanes.values()),
        "token_requests": faulted.token_requests,
        "api_requests": faulted.api_requests,
        "fault_free_api_requests": clean.api_requests,
        "wall_s": round(faulted.wall_s, 1),
        "fault_free_wall_s": round(clean.wall_s, 1),
        "wall_ratio": round(faulted.wall_s / clean.wall_s, 3) if clean.wall_s else None,
        "wall_by_crm": {crm: round(lane["wall_s"], 1) for crm, lane in faulted.lanes.items()},
        "fault_free_wall_by_crm": {crm: round(lane["wall_s"], 1) for crm, lane in clean.lanes.items()},
        "mirror_equal": int(not differing),
        "mirror_differs": differing,
        "failures": [f for lane in faulted.lanes.values() for f in lane["failed_runs"]][:5],
    }

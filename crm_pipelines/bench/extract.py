"""``crm-pipelines bench extract``: the bulk import (a backfill of every daily partition) against fresh
sandboxes with their real rate limits, through real Dagster runs, into a fresh state database.

The backfill runs as a deployment runs it: each CRM's assets in their own process (Dagster's
multiprocess executor puts each step in one, and the ``<crm>_api`` pools keep one CRM's steps in line),
the CRMs side by side, since their rate limits are independent. Each process runs that CRM's runs of
``partitions_per_run`` days in order, then its reference objects.

Figures: ``records`` (mirror rows afterwards, live and flagged deleted, all objects) against
``source_records`` (the sandboxes' own stats for the same objects; the two must be equal),
``upsert_records_per_s`` (the mirror upsert path alone: every mirrored row written again into an empty
database), ``wall_s`` against ``bound_s``: the least time the published rate limits allow for reading
every record through every rate bucket the API offers for the read (issue 17: HubSpot's list endpoint and
search together), as ``bench connectors`` computes it per object, summed over
one CRM's objects (they share its limits) and the largest of the three CRMs (whose limits are
independent); ``wall_by_crm`` and ``bound_by_crm`` show each. ``peak_rss_mb``: the largest process of the import.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import sqlalchemy as sa
import yaml

from crm_pipelines.bench.connectors import Bucket, bound_s, hubspot_buckets
from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.backfill import bulk_import
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.sandbox.endpoints import ENDPOINTS_FILE
from crm_pipelines.sandbox.launch import running_sandboxes
from crm_pipelines.sandbox.universe import TIME_RANGE
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import STATE_DB_ENV
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine, driver_url, engine_for_url
from crm_pipelines.state.schema import MIRROR_TABLES

DAGSTER_URL_ENV = "CRM_BENCH_DAGSTER_PG_URL"  # the bench's own Dagster storage, passed to its lanes


@contextmanager
def _fresh_database(url: str | None):
    """A new, empty database: its own PostgreSQL database next to ``url`` (dropped afterwards), or a
    temporary SQLite file. The bench never writes into an existing state database."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="crm-bench-state-") as tmp:
            yield f"sqlite:///{tmp}/state.sqlite3"
        return
    base = sa.engine.make_url(driver_url(url))
    name = f"crm_bench_{uuid.uuid4().hex[:10]}"
    admin = engine_for_url(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _sandboxes_apart(crms: list[str], scale: int, seed: int) -> Iterator[dict]:
    """Each CRM's sandbox in its own process, as the three services are apart: served from one process (one
    event loop), HubSpot's searches would wait behind Salesforce's bulk result pages and Dataverse's
    5,000-row pages, a coupling no real deployment has."""
    with ExitStack() as stack:
        info: dict = {}
        for crm in crms:
            info.update(stack.enter_context(running_sandboxes([crm], scale=scale, seed=seed)))
        yield info


@contextmanager
def _environment(**values: str):
    """Variables for this process and the lanes it spawns; URLs with passwords stay out of files."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _dagster_home(database_url: str | None):
    """A DAGSTER_HOME on PostgreSQL (its own fresh database, as `dagster.yaml` configures a deployment)
    when the bench is given one, its tables made before the lanes start; else None (in-memory instances)."""
    if not database_url or database_url.startswith("sqlite"):
        yield None
        return
    with _fresh_database(database_url) as url, tempfile.TemporaryDirectory(prefix="crm-bench-dagster-") as home:
        pg_url = driver_url(url)
        storage = {"postgres": {"postgres_url": {"env": DAGSTER_URL_ENV}}}
        Path(home, "dagster.yaml").write_text(yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}}))
        with _environment(**{DAGSTER_URL_ENV: pg_url}):
            dg.DagsterInstance.from_config(home).dispose()
            yield home


@dataclass(frozen=True)
class Lane:
    crm: str
    settings_path: str
    dagster_home: str | None
    keep_going: bool = False  # count a failed run and go on to the next (the soak) instead of stopping there
    # fields of the lane's CRM resource (the soak's HubSpot OAuth app of the sandbox), handed to the lane's
    # process in memory, never written to the settings file
    secrets: dict[str, str] = field(default_factory=dict)


def _run_lane(lane: Lane) -> dict:
    """One CRM's share of the bulk import, in this (fresh) process: its runs in order, then reference data."""
    batch_partition_events()
    settings = load_settings(Path(lane.settings_path))
    assets = [a for a in build_extract_assets(settings) if {k.path[0] for k in a.keys} == {lane.crm}]
    resources = build_resources(
        settings, lane.settings_path, state_url=settings.state_database_url, secrets={lane.crm: lane.secrets}
    )
    started = time.perf_counter()
    runs, all_runs, failed = 0, 0, []
    home = lane.dagster_home
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        for run in bulk_import(instance, settings, assets, resources):
            if not run.result.success:
                why = "; ".join(run.failures()) or "see its log"
                if not lane.keep_going:
                    raise RuntimeError(f"{lane.crm} backfill run for {run.label} failed: {why}")
                failed.append(f"{lane.crm} {run.label}: {why}")
            runs += run.first is not None
            all_runs += 1
    wall = time.perf_counter() - started
    partitions = len(daily_partitions(settings.extract).get_partition_keys(current_time=datetime.now(UTC)))
    return {
        "runs": runs,
        "partitions": partitions,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "all_runs": all_runs,  # the reference objects' run included
        "failed_runs": failed,
    }


def _bound_s(crm: str, obj: str, records: int) -> float:
    """Least time for ``records`` at the published sustained rates of every bucket the read can use, as
    ``bench connectors`` computes it (issue 17: HubSpot's list endpoint and search together)."""
    if crm == "hubspot":
        return bound_s(records, hubspot_buckets())
    if crm == "dynamics":
        return bound_s(records, [Bucket("default", 5000, 6000 / 300)])
    return math.ceil(records / 50_000 + 2) * 86_400 / 100_000 if records else 0.0


def _source_counts(info: dict) -> dict[tuple[str, str], int]:
    counts = {}
    for crm in ("hubspot", "salesforce", "dynamics"):
        if crm not in info:
            continue
        stats = httpx.get(f"{info[crm]['base_url']}/__sandbox__/stats", verify=False).json()
        for (c, obj), _ in MIRROR_TABLES.items():
            if c == crm and obj in stats:
                counts[(crm, obj)] = stats[obj]["live"] + stats[obj]["deleted"]
    return counts


def _time_upserts(source_url: str, target_url: str) -> float:
    """Rows per second of the mirror upsert path, re-writing every mirrored row into an empty database."""
    source = create_state_engine(source_url)
    target = create_state_engine(target_url)
    rows_by_table = {}
    for (crm, obj), table in MIRROR_TABLES.items():
        with source.connect() as conn:
            rows_by_table[(crm, obj)] = [
                mirror.MirrorRow(r.id, r.modified_at, r.record, r.deleted, r.deleted_at)
                for r in conn.execute(sa.select(table))
            ]
    total = sum(len(rows) for rows in rows_by_table.values())
    started = time.perf_counter()
    for (crm, obj), rows in rows_by_table.items():
        mirror.upsert_rows(target, crm, obj, rows)
    seconds = time.perf_counter() - started
    source.dispose()
    target.dispose()
    return round(total / seconds, 1) if seconds else 0.0


def run_extract_bench(scale: int, seed: int, database_url: str | None, start_date: str | None = None) -> dict:
    """``start_date``: the first daily partition (it holds all older records); default: the oldest record."""
    crms = ["hubspot", "salesforce", "dynamics"]
    with (
        _sandboxes_apart(crms, scale, seed) as info,
        _fresh_database(database_url) as state_url,
        tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp,
        _environment(**{STATE_DB_ENV: state_url}),
    ):
        data_dir = Path(tmp)
        (data_dir / ENDPOINTS_FILE).write_text(json.dumps(info))
        settings_path = data_dir / "settings.yaml"
        settings_path.write_text(
            yaml.safe_dump(
                {
                    "sandbox": {"data_dir": str(data_dir)},
                    "extract": {"start_date": start_date or TIME_RANGE[0].date().isoformat()},
                }
            )
        )
        with _dagster_home(database_url) as home:
            started = time.perf_counter()
            lanes = [Lane(crm, str(settings_path), home) for crm in crms]
            # spawned, not forked: each lane starts clean, as a run worker does
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(lanes), mp_context=context) as pool:
                done = dict(zip(crms, pool.map(_run_lane, lanes), strict=True))
            wall = time.perf_counter() - started
        engine = create_state_engine(state_url)
        per_object = {f"{c}.{o}": sum(mirror.counts(engine, c, o).values()) for (c, o) in MIRROR_TABLES}
        engine.dispose()
        source = _source_counts(info)
        bound_by_crm = {crm: sum(_bound_s(c, o, n) for (c, o), n in source.items() if c == crm) for crm in crms}
        bound = max(bound_by_crm.values())
        import_peak_mb = max([peak_rss_mb(), *(lane["peak_rss_mb"] for lane in done.values())])
        with _fresh_database(database_url) as target_url:
            upsert_rate = _time_upserts(state_url, target_url)  # holds every row: its memory is not the import's
    records = sum(n for key, n in per_object.items() if tuple(key.split(".", 1)) in source)
    return {
        "scale": scale,
        "records": records,
        "source_records": sum(source.values()),
        "upsert_records_per_s": upsert_rate,
        "wall_s": round(wall, 1),
        "bound_s": round(bound, 1),
        "time_ratio": round(wall / bound, 3) if bound else None,
        "wall_by_crm": {crm: round(lane["wall_s"], 1) for crm, lane in done.items()},
        "bound_by_crm": {crm: round(b, 1) for crm, b in bound_by_crm.items()},
        "runs": sum(lane["runs"] for lane in done.values()),
        "partitions": done["hubspot"]["partitions"],
        "peak_rss_mb": import_peak_mb,
        "backend": "postgresql" if state_url.startswith("postgresql") else "sqlite",
        "objects": per_object,
    }

"""``crm-pipelines demo`` (``make demo``): the whole pipeline against the bundled sandboxes, end to end.

Starts the three sandboxes with generated data, runs the bulk import (a backfill of every extract asset)
through real Dagster runs into a local state database, then the transform and the plans (a dry run), and
prints what came out and what to try next. Dagster keeps its runs in ``.dagster_home`` so ``dagster dev``
shows them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
import dagster as dg
import yaml
from sqlalchemy.engine import Engine

from crm_pipelines.dagster_events import PARTITION_EVENT_SETTINGS, batch_partition_events
from crm_pipelines.sandbox.launch import running_sandboxes

DEMO_DIR = Path(".crm_pipelines")
DAGSTER_HOME = Path(".dagster_home")


def _settings_file(data_dir: Path) -> Path:
    DEMO_DIR.mkdir(exist_ok=True)
    path = DEMO_DIR / "demo.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_database_url": f"sqlite:///{DEMO_DIR / 'demo-state.sqlite3'}",
                "sandbox": {"data_dir": str(data_dir)},
                # two weeks of daily partitions; the first also holds all older history (keeps the demo quick)
                "extract": {"start_date": (date.today() - timedelta(days=14)).isoformat(), "partitions_per_run": 7},
            }
        )
    )
    return path


def run_demo(data_dir: Path, scale: int, seed: int, keep_serving: bool) -> None:
    from crm_pipelines.defs.extract.assets import build_extract_assets
    from crm_pipelines.defs.extract.backfill import bulk_import
    from crm_pipelines.defs.partitions import daily_partitions
    from crm_pipelines.defs.resources import build_resources
    from crm_pipelines.defs.unified.assets import build_unified_assets
    from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
    from crm_pipelines.settings import load_settings
    from crm_pipelines.state import mirror
    from crm_pipelines.state.db import create_state_engine
    from crm_pipelines.state.schema import MIRROR_TABLES

    click.echo(f"Starting the HubSpot, Salesforce and Dynamics sandboxes (seed {seed}, {scale} people) …")
    crms = ["hubspot", "salesforce", "dynamics"]
    with running_sandboxes(crms, scale=scale, seed=seed, data_dir=data_dir, stderr=subprocess.DEVNULL):
        settings_path = _settings_file(data_dir)
        settings = load_settings(settings_path)
        (DEMO_DIR / "demo-state.sqlite3").unlink(missing_ok=True)
        assets = build_extract_assets(settings)
        resources = build_resources(settings, str(settings_path), state_url=settings.state_database_url)
        DAGSTER_HOME.mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(DAGSTER_HOME.resolve())
        batch_partition_events()
        keys = daily_partitions(settings.extract).get_partition_keys(current_time=datetime.now(UTC))
        per_run = settings.extract.partitions_per_run
        started = time.monotonic()
        click.echo(f"Bulk import: backfill of {len(keys)} daily partitions in runs of {per_run} …")
        with dg.DagsterInstance.get() as instance:
            failed = 0
            for run in bulk_import(instance, settings, assets, resources):
                failed += not run.result.success
                status = "ok" if run.result.success else f"FAILED: {'; '.join(run.failures())}"
                click.echo(f"  run {run.result.run_id[:8]} {run.label}: {status}")
            click.echo("Transform: identities, stage mapping, field values, rollups …")
            unified = dg.materialize([build_unified_assets(settings)], instance=instance, resources=resources)
            click.echo(f"  run {unified.run_id[:8]}: {'ok' if unified.success else 'FAILED'}")
            click.echo("Plans (a dry run: what the sync would write) …")
            plans = dg.materialize([build_unified_assets(settings), build_plan_assets()], instance=instance,
                                   resources=resources, selection=list(PLANS.values()))  # fmt: skip
            click.echo(f"  run {plans.run_id[:8]}: {'ok' if plans.success else 'FAILED'}")
        engine = create_state_engine(settings.state_database_url)
        click.echo(f"\nMirror tables after {time.monotonic() - started:.0f} s (live / flagged deleted):")
        for crm, obj in MIRROR_TABLES:
            n = mirror.counts(engine, crm, obj)
            if n["live"] or n["deleted"]:
                click.echo(f"  {crm + '.' + obj:<40} {n['live']:>7} / {n['deleted']}")
        _summarize_transform(engine)
        if plans.success:
            click.echo("\nPlans (nothing written yet; `crm-pipelines plan` lists every record):")
            for event in plans.get_asset_materialization_events():
                meta = event.materialization.metadata
                crm = event.materialization.asset_key.path[-1].removesuffix("_plan")
                click.echo(f"  {crm:<11} {meta['creates'].value:>6} records to create "
                           f"{meta['creates_by_object'].value}, {meta['updates'].value:>6} field updates, "
                           f"{meta['associations'].value} associations, {meta['findings'].value} findings, "
                           f"{meta['conflicts'].value} conflicts, {meta['api_calls_planned'].value} API calls")
        click.echo(
            "\nNext:\n"
            f"  DAGSTER_HOME={DAGSTER_HOME.resolve()} CRM_PIPELINES_SETTINGS={settings_path.resolve()} \\\n"
            f"    {' '.join(f'{k}={v}' for k, v in PARTITION_EVENT_SETTINGS.items())} \\\n"
            "    .venv/bin/dagster dev -w workspace.yaml      # the runs, assets, checks and the change sensor\n"
            "  .venv/bin/crm-pipelines sandbox serve          # keep the sandboxes up (same data dir)\n"
            "  .venv/bin/crm-pipelines check                  # credentials of each connection\n"
            f"  CRM_PIPELINES_SETTINGS={settings_path.resolve()} .venv/bin/crm-pipelines plan   # the plans\n"
        )
        if failed:  # the mirror keeps what the other runs read
            raise click.ClickException(f"{failed} bulk-import run(s) failed (above; their logs in the Dagster UI)")
        if keep_serving:
            click.echo("Sandboxes keep serving; Ctrl-C stops them.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


def _summarize_transform(engine: Engine) -> None:
    """Identities, findings and rollups, read back from the transform's result tables."""
    from crm_pipelines.defs.unified.summary import summarize

    for line in summarize(engine):
        click.echo(line)

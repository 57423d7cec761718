"""Extraction through real Dagster runs, against a HubSpot sandbox, on both state database backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.settings import load_settings
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox


@pytest.fixture
def hubspot_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A fresh sandbox per test: these tests edit and delete records."""
    sandbox = start_sandbox(tmp_path / "sandbox", scale=400, seed=5)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def settings_file(tmp_path: Path, hubspot_sandbox: RunningSandbox, state_url: str) -> Path:
    """Settings with no credentials: connections go to the running sandbox (TOP-2)."""
    path = tmp_path / "crm_pipelines.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_database_url": state_url,
                "sandbox": {"data_dir": str(hubspot_sandbox.data_dir)},
                "connections": {"salesforce": {"enabled": False}, "dynamics": {"enabled": False}},
                # ~20 daily partitions in runs of 8: the first partition takes all older history
                "extract": {"partitions_per_run": 8, "start_date": (date.today() - timedelta(days=20)).isoformat()},
            }
        )
    )
    return path


@pytest.fixture
def extract_defs(settings_file: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_REFRESH_TOKEN", "CRM_PIPELINES_STATE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(settings_file)
    assets = build_extract_assets(settings)
    resources = build_resources(settings, str(settings_file), state_url=settings.state_database_url)
    return settings, assets, resources


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance: the repo's dagster.yaml on PostgreSQL under `make test`, else a local one."""
    if os.environ.get("DAGSTER_PG_HOST"):
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[2] / "dagster.yaml").read_text())
        with dg.DagsterInstance.from_config(str(home)) as inst:
            yield inst
    else:
        with dg.instance_for_test() as inst:
            yield inst

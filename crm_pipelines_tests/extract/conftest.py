"""Extraction through real Dagster runs, against a HubSpot sandbox, on both state database backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy.engine import Engine

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.settings import Settings, load_settings
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
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


@contextmanager
def dagster_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance: the repo's dagster.yaml in ``home`` (made here) on PostgreSQL under `make test`,
    else a local one."""
    if os.environ.get("DAGSTER_PG_HOST"):
        home.mkdir()
        (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[2] / "dagster.yaml").read_text())
        with dg.DagsterInstance.from_config(str(home)) as inst:
            yield inst
    else:
        with dg.instance_for_test() as inst:
            yield inst


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """``dagster_instance``, one per test."""
    with dagster_instance(tmp_path / "dagster_home") as inst:
        yield inst


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """``instance`` made once per module, for a module whose tests share one costly set-up."""
    with dagster_instance(tmp_path_factory.mktemp("instance") / "dagster_home") as inst:
        yield inst


# --------------------------------------------------------------------------------------------------
# The three sandboxes (HubSpot, Salesforce, Dynamics) and runs on them, as the end-to-end tests start.
# --------------------------------------------------------------------------------------------------


def start_three_sandboxes(data_dir: Path) -> RunningSandbox:
    """HubSpot, Salesforce and Dynamics sandboxes (the latter two on free ports), 200 people, seed 11."""
    return start_sandbox(
        data_dir, "--only", "salesforce", "--salesforce-port", "0", "--only", "dynamics",
        "--dynamics-port", "0", scale=200, seed=11,
    )  # fmt: skip


@pytest.fixture
def three_sandboxes(tmp_path: Path) -> Iterator[RunningSandbox]:
    sandbox = start_three_sandboxes(tmp_path / "sandbox")
    yield sandbox
    sandbox.stop()


@dataclass
class SandboxRuns:
    """Settings written for runs on a sandbox, and the definitions built from them."""

    sandbox: RunningSandbox
    instance: dg.DagsterInstance
    state_url: str
    settings_path: Path
    settings: Settings
    resources: dict
    extract: list[dg.AssetsDefinition]
    unified: dg.AssetsDefinition

    @cached_property
    def engine(self) -> Engine:
        """The state database's engine (made, and so migrated, when first asked for)."""
        return create_state_engine(self.state_url)

    def backfill(self) -> None:
        """``backfill``: the bulk import's runs, which must succeed."""
        backfill(self.instance, self.settings, self.extract, self.resources)

    def unify(self) -> dg.ExecuteInProcessResult:
        """A run of ``unified``, which must succeed."""
        result = dg.materialize([self.unified], instance=self.instance, resources=self.resources)
        assert result.success
        return result

    def sync_changes(self) -> int:
        """``sync_changes``: the change sensor's tick and the extract runs it requests; their number."""
        return sync_changes(self.settings, self.extract, self.instance, self.resources)


def sandbox_runs(sandbox: RunningSandbox, instance: dg.DagsterInstance, state_url: str, settings_path: Path, *,
                 run_backfill: bool = True, run_unified: bool = True, **sections) -> SandboxRuns:
    """Runs on ``sandbox``: the settings written (``sandbox_settings``, plus ``sections`` such as ``sync=...``),
    the extract, ``unified`` and the resources built from them; then, unless turned off, the bulk import's
    backfill and a first ``unified`` (``run_unified`` needs ``run_backfill``)."""
    sandbox_settings(settings_path, sandbox, state_url, **sections)
    settings = load_settings(settings_path)
    runs = SandboxRuns(sandbox, instance, state_url, settings_path, settings,
                       build_resources(settings, str(settings_path), state_url=state_url),
                       build_extract_assets(settings), build_unified_assets(settings))  # fmt: skip
    if run_backfill:
        runs.backfill()
        if run_unified:
            runs.unify()
    return runs


@pytest.fixture
def three_sandbox_runs(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> Callable[..., SandboxRuns]:
    """``sandbox_runs`` on the test's three sandboxes, state database and Dagster instance; call it with the
    settings' sections (the sandboxes can be prepared first: ask for ``three_sandboxes`` too)."""

    def make(**options) -> SandboxRuns:
        return sandbox_runs(three_sandboxes, instance, state_url, tmp_path / "crm_pipelines.yaml", **options)

    return make

"""The browser test's deployment: the three sandboxes, the bulk import and a first sync on a Dagster instance
of its own (the repository's ``dagster.yaml`` on a PostgreSQL database of its own), ``dagster-webserver`` on it,
and Debian's Chromium driven by Playwright. Screenshots of each step go to ``test-artifacts/browser/``, with the
servers' logs and a screenshot of the page where a test failed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from crm_pipelines_tests.browser import servers
from crm_pipelines_tests.conftest import REPO_ROOT, new_state_url
from crm_pipelines_tests.extract.conftest import start_three_sandboxes
from crm_pipelines_tests.extract.test_writeback_contacts import _world, _write_run

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("CRM_PIPELINES_CHROMIUM", "/usr/bin/chromium"))
PARTITIONS_PER_RUN = 4
DAYS = 6  # daily partitions from six days ago to today: two import runs, a range of three fits in one


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Each phase's report on the test item, so the page fixture knows whether its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/browser/``, emptied: it holds this run's screenshots and logs only. Git ignores it (its
    parent holds a ``.gitignore`` of ``*``)."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    (ARTIFACTS.parent / ".gitignore").write_text("*\n")
    return ARTIFACTS


@pytest.fixture(scope="session")
def sync_api():
    """Playwright's sync API (checked before anything costly is set up)."""
    return pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make .venv")


@pytest.fixture(scope="session")
def chromium(sync_api) -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium with apt-get where it runs "
                    "as root with apt; elsewhere install it (apt-get install chromium) or point "
                    "CRM_PIPELINES_CHROMIUM at one")  # fmt: skip
    return CHROMIUM


@dataclass
class Deployment:
    world: dict  # test_writeback_contacts' world: settings, resources, instance, assets, state engine
    instance: dg.DagsterInstance
    home: Path
    settings_path: Path
    workspace: Path
    url: str  # the webserver's


def _dagster_home(home: Path, database: str) -> Path:
    """The repository's ``dagster.yaml`` (PostgreSQL storage, per-connection pools, telemetry off) storing in
    ``database``: the suite's other tests share the default one, and their runs, pool slots and sensor cursors
    must not reach this instance's daemon."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_db"]["db_name"] = database
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture(scope="module")
def deployment(
    chromium: Path, artifacts: Path, pg_url: str, request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """The demo's situation at a small scale: three sandboxes imported (a backfill of daily partitions, as the
    bulk import runs it) and synced once (``unified``, the plans, the writes), then ``dagster-webserver`` on
    that instance. Nothing else runs until a test starts the daemon."""
    tmp = tmp_path_factory.mktemp("browser")
    dagster_db = sa.make_url(new_state_url("postgresql", tmp, request)).database
    home = _dagster_home(tmp / "dagster_home", dagster_db)
    sandboxes = start_three_sandboxes(tmp / "sandbox")
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            start = (datetime.now(UTC).date() - timedelta(days=DAYS)).isoformat()
            world = _world(tmp, sandboxes, new_state_url("postgresql", tmp, request), instance,
                           extract={"partitions_per_run": PARTITIONS_PER_RUN, "start_date": start})  # fmt: skip
            _write_run(world)
            workspace = servers.write_workspace(tmp / "workspace.yaml")
            port = servers.free_port()
            log = artifacts / "webserver.log"
            webserver = servers.start_webserver(home, tmp / "crm_pipelines.yaml", workspace, port, log)
            try:
                url = f"http://127.0.0.1:{port}"
                servers.wait_until_loaded(url, webserver, log)
                yield Deployment(world, instance, home, tmp / "crm_pipelines.yaml", workspace, url)
            finally:
                servers.stop(webserver)
                world["engine"].dispose()
    finally:
        sandboxes.stop()


@pytest.fixture
def daemon(deployment: Deployment, artifacts: Path) -> Iterator[None]:
    """``dagster-daemon`` on the deployment's instance: it runs the backfills launched from the UI (and the
    sync loop's sensors, as deployed)."""
    log = artifacts / "daemon.log"
    proc = servers.start_daemon(deployment.home, deployment.settings_path, deployment.workspace, log)
    try:
        servers.wait_until_healthy(deployment.url, proc, log)
        yield
    finally:
        servers.stop(proc)


@pytest.fixture(scope="module")
def browser(sync_api, chromium: Path, deployment: Deployment) -> Iterator:
    """Chromium, started after the deployment: while Playwright's sync API runs its event loop, the set-up's
    runs could not call ``asyncio.run``."""
    with sync_api.sync_playwright() as playwright:
        # Debian's build, not one Playwright downloads; /dev/shm is small in containers
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--disable-dev-shm-usage"])
        _skip_community_dialog(sync_api, browser, deployment.url)
        yield browser
        browser.close()


COMMUNITY = "Join the Dagster community"  # Dagster's first-visit dialog, shown once per instance


def _skip_community_dialog(sync_api, browser, url: str) -> None:
    """Dismiss the dialog Dagster shows a second after the first visit, as a user does (Skip): it would cover
    the pages the tests open. The instance remembers it; nothing happens when it does not show."""
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto("/")
    try:
        page.get_by_text(COMMUNITY).wait_for(timeout=15_000)
    except sync_api.TimeoutError:
        pass
    else:
        page.get_by_role("button", name="Skip").click()
        page.get_by_text(COMMUNITY).wait_for(state="hidden")
    context.close()


@pytest.fixture
def page(sync_api, browser, deployment: Deployment, artifacts: Path, request: pytest.FixtureRequest) -> Iterator:
    """A fresh page at the webserver's URL (``page.goto("/assets/...")``); a screenshot of it when the test
    fails."""
    sync_api.expect.set_options(timeout=60_000)  # the first query of a page loads the code location's data
    context = browser.new_context(base_url=deployment.url, viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    # should the dialog still come (a new browser profile is a first visit), Skip it before any action
    page.add_locator_handler(page.get_by_text(COMMUNITY), lambda: page.get_by_role("button", name="Skip").click())
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=artifacts / f"failed-{request.node.name}.png", full_page=True)
    context.close()

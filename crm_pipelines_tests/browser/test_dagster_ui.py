"""Issue 15: the Dagster UI as a user meets it, in Chromium, on a deployment that has imported and synced the
three sandboxes (``conftest.py``): the asset graph's groups, a plan's counts and tables, the ``failed_writes``
check with the API's error, and a partition range of an extract launched from its asset page (a backfill, which
the daemon runs under the extract's backfill policy: one run for the range). Each step leaves a screenshot in
``test-artifacts/browser/``.

The tests run in this order and share the deployment: the first three read what the set-up wrote, before the
last one starts the daemon (whose sync loop then changes the state)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import pytest
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, BACKFILL_ID_TAG

from crm_pipelines.defs.writeback.write_assets import FAILED_WRITES
from crm_pipelines.state import outbox, plan_store
from crm_pipelines_tests.browser.conftest import ARTIFACTS, Deployment

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make .venv").expect
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]  # the set-up runs in the first test's time

GROUPS = ("hubspot", "salesforce", "dynamics", "unified", "writeback")
PLAN_CRM = "salesforce"  # its plan has creates (Leads, Accounts, …) and field updates on the sandboxes' data
RANGE_ASSET = dg.AssetKey(["hubspot", "contacts"])
BACKFILL_S = 480  # the run waits in the pool behind the sync loop's first runs on a loaded CI machine


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def _rows(page: Page, scope: str = "tr") -> list[list[str]]:
    """The text of each cell of each table row matching ``scope``, as shown."""
    return page.locator(scope).evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))")


def _metadata(page: Page) -> dict[str, str]:
    """Metadata as the page's key/value tables show it: key -> the value cell's text (the last cell: the asset
    page's table has a timestamp column between them)."""
    return {row[0]: row[-1] for row in _rows(page) if len(row) >= 2}


def test_the_asset_graph_shows_the_five_groups(page: Page, deployment: Deployment) -> None:
    """The global asset graph shows one group per CRM's extracts and one per layer after them."""
    page.goto("/asset-groups")
    for group in GROUPS:
        # a group box carries its whole name in data-tooltip (the visible text is truncated when narrow)
        expect(page.locator(f'[data-tooltip="{group}"]').first).to_be_visible()
    expect(page.locator('[data-tooltip="default"]')).to_have_count(0)  # every asset is in a named group
    expect(page.get_by_text("fetching statuses")).to_have_count(0)  # the groups' counts have loaded
    _shot(page, "01-asset-graph")


def test_a_plan_asset_shows_its_creates_and_updates_with_a_table_per_object(
    page: Page, deployment: Deployment
) -> None:
    """OPS-5: a plan's page shows, from its latest materialization, how many creates and field updates it holds
    and a table of them per object (Markdown rendered as an HTML table), the numbers the stored plan holds."""
    engine = deployment.world["engine"]
    stored = plan_store.counts(engine)
    creates, updates = stored.get((PLAN_CRM, "creates"), 0), stored.get((PLAN_CRM, "updates"), 0)
    assert creates and updates, "the sandboxes' data no longer gives this plan creates and updates"
    per_object = plan_store.read(engine, ["creates"], target=PLAN_CRM)[(PLAN_CRM, "creates")]["object"].value_counts()

    page.goto(f"/assets/writeback/{PLAN_CRM}_plan")
    expect(page.get_by_text("creates", exact=True).first).to_be_visible()
    _shot(page, "02-plan-asset")
    shown = _metadata(page)
    assert (shown.get("creates"), shown.get("updates")) == (str(creates), str(updates)), shown
    tables = _rows(page, "td table tr")  # Markdown tables rendered inside the metadata's value cells
    for obj, count in per_object.items():
        assert any(row[0] == obj and str(count) in row[1:] for row in tables), (obj, count, tables)


def test_the_failed_writes_check_shows_what_salesforce_refused_and_the_apis_error(
    page: Page, deployment: Deployment
) -> None:
    """OPS-6: the write asset's ``failed_writes`` check has failed (a warning), counts the records Salesforce
    refused (Leads without the required company, in the sandboxes' data) and its sample names the API's error
    code and text."""
    refused = outbox.failures(deployment.world["engine"], "salesforce")
    assert len(refused), "the sandboxes' data no longer has a record Salesforce refuses"
    code, message, ref = (refused[c].iloc[0] for c in ("code", "message", "ref"))

    page.goto(f"/assets/writeback/salesforce_writes?view=checks&checkDetail={FAILED_WRITES}")
    expect(page.get_by_text(FAILED_WRITES, exact=True).first).to_be_visible()
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    expect(page.get_by_text("count", exact=True).first).to_be_visible()
    assert _metadata(page).get("count") == str(len(refused))
    _shot(page, "03-failed-writes-check")
    # the innermost row (.last) whose key is ``sample``: its Markdown opens in a dialog
    page.locator("tr", has=page.get_by_text("sample", exact=True)).last.get_by_text("[Show Markdown]").click()
    sample = page.get_by_role("dialog")
    expect(sample.get_by_text(code).first).to_be_visible()
    expect(sample.get_by_text(message).first).to_be_visible()
    expect(sample.get_by_text(ref, exact=True)).to_be_visible()  # the record, as the outbox names it
    _shot(page, "04-failed-writes-sample")


def test_a_partition_range_launched_from_the_asset_page_runs_as_one_run_and_succeeds(
    page: Page, deployment: Deployment, daemon: None
) -> None:
    """OPS-1: three daily partitions of ``hubspot/contacts`` chosen as a range in the asset page's Materialize
    dialog become a backfill that the daemon runs as ONE run for the range (the backfill policy: up to
    ``partitions_per_run`` a run), which succeeds and materializes exactly those partitions."""
    today = datetime.now(UTC).date()
    keys = [(today - timedelta(days=d)).isoformat() for d in (3, 2, 1)]
    launched = time.time()
    page.goto("/assets/" + "/".join(RANGE_ASSET.path))
    # the button's name also holds its icon's label: match the word, not the start
    page.get_by_role("button", name=re.compile(r"\bMaterialize")).first.click()
    dialog = page.get_by_role("dialog")
    partitions = dialog.get_by_placeholder(re.compile(r"^(ex: |No matching)"))
    partitions.fill(f"[{keys[0]}...{keys[-1]}]")
    partitions.press("Enter")
    expect(dialog.get_by_text("3 partitions", exact=True)).to_be_visible()
    _shot(page, "05-launch-partition-range")
    dialog.get_by_role("button", name="Launch backfill").click()
    expect(page.get_by_text("Created backfill").first).to_be_visible()

    backfill = _await_backfill(deployment.instance, launched)
    runs = deployment.instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, (backfill.status, [r.status for r in runs])
    (run,) = runs
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]) == (keys[0], keys[-1])
    events = deployment.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert sorted(e.dagster_event.partition for e in events if e.dagster_event.asset_key == RANGE_ASSET) == keys

    page.goto(f"/runs/{run.run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    _shot(page, "06-range-run-succeeded")


def _await_backfill(instance: dg.DagsterInstance, launched: float):
    """The backfill launched after ``launched`` once it has ended."""
    deadline = time.monotonic() + BACKFILL_S
    found: list = []
    while time.monotonic() < deadline:
        found = [b for b in instance.get_backfills(limit=5) if b.backfill_timestamp >= launched - 1]
        if found and found[0].status in BULK_ACTION_TERMINAL_STATUSES:
            return found[0]
        time.sleep(2)
    log = (ARTIFACTS / "daemon.log").read_text()[-3000:]
    raise AssertionError(f"the backfill did not end in {BACKFILL_S} s (found: {found}); daemon log:\n{log}")

"""OPS-2: the per-connection API call limit holds across processes and restarts, and frees up as the
rolling 24 h window moves on. The clock is injected; nothing sleeps."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import BudgetExhausted
from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines_tests.crm.budget_worker import spend
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

NOW = 1_790_000_000.0  # 2026-09-21, any fixed instant


def _usage(hubspot: RunningSandbox) -> int:
    with hubspot.admin() as admin:
        return admin.get("/usage").json()["endpoints"].get("GET /crm/v3/pipelines/{object_type}", 0)


def test_budget_is_shared_by_two_processes_and_never_exceeded(
    hubspot_live: RunningSandbox, state_engine, state_url: str
) -> None:
    """OPS-2: two processes on one state database together make exactly `limit` calls, then stop."""
    before = _usage(hubspot_live)
    other = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_pipelines_tests.crm.budget_worker",
            state_url,
            hubspot_live.base_url,
            hubspot_live.token,
            "12",
            str(NOW),
            "7",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    made_elsewhere = json.loads(other.stdout.strip().splitlines()[-1])["made"]
    assert made_elsewhere == 7
    made_here = asyncio.run(spend(state_url, hubspot_live.base_url, hubspot_live.token, 12, NOW + 60, 50))
    assert made_here == 5  # the other process's leftovers were handed back, so 12 - 7 remain
    assert _usage(hubspot_live) - before == 12  # the sandbox saw exactly the limit, not one call more
    assert SqlCallLedger(state_engine).used("hubspot", NOW + 60) == 12


def test_spent_budget_defers_with_a_clear_message_and_resumes_when_the_window_rolls(
    hubspot_live: RunningSandbox, state_engine
) -> None:
    """OPS-2: when the budget is spent the call is refused, naming the connection and when it fits again."""
    ledger = SqlCallLedger(state_engine)
    clock = {"now": NOW}

    async def calls(n: int) -> int:
        budget = CallBudget("hubspot", 4, ledger, lease=2, clock=lambda: clock["now"])
        made = 0
        async with HubSpotClient(
            "hubspot", hubspot_live.base_url, PrivateAppToken(hubspot_live.token), budget=budget
        ) as client:
            for _ in range(n):
                await client.pipelines()
                made += 1
        return made

    assert asyncio.run(calls(4)) == 4
    with pytest.raises(BudgetExhausted) as refused:
        asyncio.run(calls(1))
    assert "[hubspot] API call limit reached: 4 calls in the last 24 h" in str(refused.value)
    assert refused.value.retry_at == pytest.approx(NOW + 24 * 3600, abs=60)

    clock["now"] = NOW + 12 * 3600  # half a day later the old calls still count
    with pytest.raises(BudgetExhausted):
        asyncio.run(calls(1))
    clock["now"] = refused.value.retry_at  # the window has rolled past them
    assert asyncio.run(calls(4)) == 4
    assert ledger.usage(clock["now"]) == {"hubspot": 4}


def test_waiting_budget_sleeps_until_calls_fit_instead_of_failing(hubspot_live: RunningSandbox, state_engine) -> None:
    """OPS-2: with waiting allowed, a spent budget pauses the work until the window frees a call."""
    ledger = SqlCallLedger(state_engine)
    clock = {"now": NOW}
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    async def run() -> int:
        budget = CallBudget(
            "hubspot", 3, ledger, lease=1, max_wait_s=2 * 24 * 3600, clock=lambda: clock["now"], sleep=fake_sleep
        )
        async with HubSpotClient(
            "hubspot", hubspot_live.base_url, PrivateAppToken(hubspot_live.token), budget=budget
        ) as client:
            for _ in range(5):
                await client.pipelines()
        return budget.spent

    assert asyncio.run(run()) == 5
    assert len(slept) == 1 and slept[0] == pytest.approx(24 * 3600, abs=60)


def test_calls_are_counted_without_a_limit_and_usage_reports_them(
    hubspot_live: RunningSandbox, state_url: str, tmp_path
) -> None:
    """OPS-2: with no limit set the calls are still counted (the lease's unused calls handed back), and
    `crm-pipelines usage` shows each connection's last 24 h against its limit, or that none is set."""
    import time

    import yaml
    from click.testing import CliRunner

    from crm_pipelines.cli import main
    from crm_pipelines.state.db import create_state_engine

    engine = create_state_engine(state_url)
    before = _usage(hubspot_live)

    async def three_calls() -> None:
        budget = CallBudget("hubspot", None, SqlCallLedger(engine))
        async with HubSpotClient(
            "hubspot", hubspot_live.base_url, PrivateAppToken(hubspot_live.token), budget=budget
        ) as client:
            for _ in range(3):
                await client.pipelines()

    asyncio.run(three_calls())
    assert _usage(hubspot_live) - before == 3
    assert SqlCallLedger(engine).used("hubspot", time.time()) == 3
    engine.dispose()

    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"state_database_url": state_url,
                                        "connections": {"salesforce": {"api_call_limit": 1000}}}))  # fmt: skip
    as_json = CliRunner().invoke(main, ["usage", "--settings", str(settings), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = {r["connection"]: r for r in json.loads(as_json.output)}
    assert (rows["hubspot"]["calls_24h"], rows["hubspot"]["limit_24h"], rows["hubspot"]["left_24h"]) == (3, None, None)
    assert (rows["salesforce"]["calls_24h"], rows["salesforce"]["left_24h"]) == (0, 1000)
    shown = CliRunner().invoke(main, ["usage", "--settings", str(settings)])
    hubspot_line = next(line for line in shown.output.splitlines() if line.startswith("hubspot"))
    assert "no limit set" in hubspot_line and " 3 " in hubspot_line

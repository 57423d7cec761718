"""A second process spending the same connection's API budget (run by test_call_budget.py)."""

from __future__ import annotations

import asyncio
import json
import sys

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import BudgetExhausted
from crm_pipelines.crm.hubspot.auth import PrivateAppToken
from crm_pipelines.crm.hubspot.client import HubSpotClient
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.db import create_state_engine


async def spend(state_url: str, base_url: str, token: str, limit: int, now: float, attempts: int) -> int:
    budget = CallBudget("hubspot", limit, SqlCallLedger(create_state_engine(state_url)), lease=3, clock=lambda: now)
    made = 0
    async with HubSpotClient("hubspot", base_url, PrivateAppToken(token), budget=budget) as client:
        for _ in range(attempts):
            try:
                await client.pipelines()
            except BudgetExhausted:
                break
            made += 1
    return made


if __name__ == "__main__":
    state_url, base_url, token, limit, now, attempts = sys.argv[1:]
    made = asyncio.run(spend(state_url, base_url, token, int(limit), float(now), int(attempts)))
    print(json.dumps({"made": made}))

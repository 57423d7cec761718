"""``crm-pipelines usage``: API calls of the last 24 h per connection against its limit (OPS-2).

Every call a connector makes is counted in the state database's ledger (``state/api_usage.py``), whether or
not a limit is set, by every process that shares that database (the daemon's runs, the CLI, the benches).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from crm_pipelines.crm.check import environment_secrets
from crm_pipelines.crm.connections import target_of
from crm_pipelines.settings.model import Settings
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.db import create_state_engine

CONNECTIONS = ("hubspot", "salesforce", "dynamics")


@dataclass(frozen=True)
class Usage:
    connection: str
    target: str  # api | sandbox
    enabled: bool
    calls_24h: int
    limit_24h: int | None  # None: no limit set (settings: connections.<crm>.api_call_limit)
    left_24h: int | None

    @property
    def share(self) -> str:
        return "no limit set" if self.limit_24h is None else f"{self.calls_24h / self.limit_24h:.1%}"


def usage(settings: Settings, now: float | None = None) -> list[Usage]:
    engine = create_state_engine(settings.state_database_url)
    try:
        used = SqlCallLedger(engine).usage(time.time() if now is None else now)
    finally:
        engine.dispose()
    secrets = environment_secrets()
    rows = []
    for crm in CONNECTIONS:
        conn = getattr(settings.connections, crm)
        calls, limit = used.get(crm, 0), conn.api_call_limit
        rows.append(Usage(crm, target_of(settings, crm, secrets), conn.enabled, calls, limit,
                          None if limit is None else max(limit - calls, 0)))  # fmt: skip
    return rows


def as_dicts(rows: list[Usage]) -> list[dict]:
    return [asdict(r) for r in rows]


def table(rows: list[Usage]) -> list[str]:
    lines = [f"{'connection':<11} {'target':<8} {'calls (24 h)':>12} {'limit':>12} {'left':>12}  share"]
    for r in rows:
        limit = "-" if r.limit_24h is None else f"{r.limit_24h:,}"
        left = "-" if r.left_24h is None else f"{r.left_24h:,}"
        name = r.connection if r.enabled else f"{r.connection} (off)"
        lines.append(f"{name:<11} {r.target:<8} {r.calls_24h:>12,} {limit:>12} {left:>12}  {r.share}")
    return lines

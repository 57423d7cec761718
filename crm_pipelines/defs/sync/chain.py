"""What follows an extract in the sync loop (issue 14): ``unified``, the plans, and each CRM's writes, with the
checks each step makes itself (the sweep's whole-table checks are not part of it: they run on their schedule)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
from crm_pipelines.settings import Settings


@dataclass(frozen=True)
class Chain:
    assets: list[dg.AssetKey]  # unified and the plans
    checks: list[dg.AssetCheckKey]
    writes: dict[str, dg.AssetKey]  # per target CRM
    write_checks: dict[str, list[dg.AssetCheckKey]]

    def selection(self, targets: list[str]) -> tuple[list[dg.AssetKey], list[dg.AssetCheckKey]]:
        """The chain's assets and checks with the writes of ``targets`` only."""
        return ([*self.assets, *(self.writes[t] for t in targets)],
                [*self.checks, *(c for t in targets for c in self.write_checks[t])])  # fmt: skip


def sync_chain(settings: Settings) -> Chain:
    unified, plans = build_unified_assets(settings), build_plan_assets()
    writes = {next(iter(a.keys)): a for a in build_write_assets()}
    return Chain(
        assets=[*unified.keys, *plans.keys], checks=[*unified.check_keys, *plans.check_keys],
        writes=dict(WRITES), write_checks={crm: list(writes[key].check_keys) for crm, key in WRITES.items()},
    )

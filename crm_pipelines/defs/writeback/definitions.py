"""The writeback layer's definitions (resources come from the extract layer's definitions)."""

import dagster as dg

from crm_pipelines.defs.writeback.assets import build_plan_assets


@dg.definitions
def writeback_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[build_plan_assets()])

"""The writeback layer's definitions (resources come from the extract layer's definitions)."""

import dagster as dg

from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import build_write_assets


@dg.definitions
def writeback_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[build_plan_assets(), *build_write_assets()])

"""The unified layer's definitions (resources come from the extract layer's definitions)."""

import dagster as dg

from crm_pipelines.defs.unified.assets import build_unified_assets


@dg.definitions
def unified_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[build_unified_assets()])

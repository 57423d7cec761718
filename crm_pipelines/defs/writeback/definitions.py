"""The writeback layer's definitions (resources come from the extract layer's definitions)."""

import os

import dagster as dg

from crm_pipelines.defs.writeback.assets import build_plan_assets
from crm_pipelines.defs.writeback.write_assets import build_write_assets
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SETTINGS_ENV


@dg.definitions
def writeback_definitions() -> dg.Definitions:
    settings = load_settings(os.environ.get(SETTINGS_ENV))  # the state database's kind, shown in the graph
    return dg.Definitions(assets=[build_plan_assets(settings), *build_write_assets(settings)])

"""The unified layer's definitions (resources come from the extract layer's definitions)."""

import os

import dagster as dg

from crm_pipelines.defs.unified.assets import build_unified_assets, build_unified_checks
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SETTINGS_ENV


@dg.definitions
def unified_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[build_unified_assets(load_settings(os.environ.get(SETTINGS_ENV)))],
                          asset_checks=build_unified_checks())

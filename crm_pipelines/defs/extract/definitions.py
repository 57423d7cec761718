"""The extract layer's definitions, built from the settings when the code location loads (not at import)."""

from __future__ import annotations

import os

import dagster as dg

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SETTINGS_ENV


@dg.definitions
def extract_definitions() -> dg.Definitions:
    settings_path = os.environ.get(SETTINGS_ENV)
    settings = load_settings(settings_path)
    return dg.Definitions(
        assets=build_extract_assets(settings),
        resources=build_resources(settings, settings_path),
    )

"""A bulk-import backfill in its own process, so a test can kill it mid-run (test_extract.py)."""

from __future__ import annotations

import sys

import dagster as dg

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.settings import load_settings

if __name__ == "__main__":
    from crm_pipelines_tests.extract.test_extract import backfill

    settings_path, select = sys.argv[1], sys.argv[2]
    settings = load_settings(settings_path)
    assets = build_extract_assets(settings)
    resources = build_resources(settings, settings_path, state_url=settings.state_database_url)
    with dg.instance_for_test() as instance:
        backfill(instance, settings, assets, resources, [dg.AssetKey.from_user_string(select)])

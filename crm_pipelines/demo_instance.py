"""The demo's Dagster instance (``.dagster_home``) and settings file (issue 15).

The instance gets a ``dagster.yaml`` derived from the project's own: its per-connection pools (one extract or
write step per CRM at a time, so "Materialize all" in the UI never runs three imports against one CRM at once),
its run queue and telemetry switch; its PostgreSQL storage when the documented ``DAGSTER_PG_*`` variables are
set (the file names the variables, never their values), else Dagster's SQLite files in the directory itself.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from crm_pipelines.defs.run_tags import ONE_CHAIN_AT_A_TIME

REPO = Path(__file__).resolve().parents[1]
PROJECT_DAGSTER_YAML = REPO / "dagster.yaml"
PG_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
# what the project's dagster.yaml holds besides storage, for an installed package without the repository
FALLBACK = {"telemetry": {"enabled": False}, "run_queue": {"dequeue_interval_seconds": 1},
            "concurrency": {"pools": {"default_limit": 1},
                            "runs": {"tag_concurrency_limits": [ONE_CHAIN_AT_A_TIME]}}}  # fmt: skip
HEADER = """\
# Written by `crm-pipelines demo` from the project's dagster.yaml (rewritten on every demo run).
# Storage: {storage}.
# Pools: every extract and write step runs in its connection's pool (hubspot_api, salesforce_api,
# dynamics_api), one at a time, so two runs never talk to one CRM at once (OPS-2).
"""


def uses_postgres(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether the documented PostgreSQL variables for Dagster's storage are set (all of them)."""
    return all(environ.get(name) for name in PG_VARIABLES)


def instance_config(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, Any]:
    """The project's ``dagster.yaml`` with its PostgreSQL storage kept only when the variables are set."""
    config = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text()) if PROJECT_DAGSTER_YAML.exists() else dict(FALLBACK)
    if not uses_postgres(environ):
        config.pop("storage", None)  # Dagster's default: SQLite files under DAGSTER_HOME
    return config


def prepare_home(home: Path, environ: dict[str, str] | os._Environ = os.environ) -> Path:
    """``home`` with a fresh ``dagster.yaml``. On SQLite the previous demo's runs are discarded with the state
    they described (the sandboxes and the state database start over too); a PostgreSQL database is the
    user's and is left as it is. Returns the ``dagster.yaml`` path."""
    postgres = uses_postgres(environ)
    if home.exists() and not postgres:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    storage = ("PostgreSQL, from DAGSTER_PG_HOST, _PORT, _USER, _PASSWORD and _DB" if postgres
               else "SQLite files in this directory (set the DAGSTER_PG_* variables for PostgreSQL)")  # fmt: skip
    path = home / "dagster.yaml"
    path.write_text(HEADER.format(storage=storage) + yaml.safe_dump(instance_config(environ), sort_keys=False))
    return path


def write_settings(path: Path, *, data_dir: Path, state_db: Path, api_call_limit: int) -> Path:
    """The demo's settings: every connection on its sandbox with writes on and a 24 h call limit (so the usage
    against it shows, OPS-2); two weeks of daily partitions, the first holding all older history; the
    Salesforce "Sales" record type mapped onto HubSpot's sales pipeline for three stages with auto-map on, so
    the other stages are reported unmapped and a proposal for them is made (DEAL-2)."""
    from crm_pipelines.sandbox.salesforce.seed import record_type_id

    connection = {"target": "sandbox", "writes": True, "api_call_limit": api_call_limit}
    settings = {
        "state_database_url": f"sqlite:///{state_db}",
        "sandbox": {"data_dir": str(data_dir)},
        "connections": {crm: dict(connection) for crm in ("hubspot", "salesforce", "dynamics")},
        "extract": {"start_date": (date.today() - timedelta(days=14)).isoformat(), "partitions_per_run": 7},
        "sync": {"salesforce": {"deals": {"pipelines": [{
            "other_pipeline": record_type_id("sales"), "hubspot_pipeline": "default", "auto_map": True,
            "stages": {"Prospecting": "appointmentscheduled", "Closed Won": "closedwon", "Closed Lost": "closedlost"},
        }]}}},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `crm-pipelines demo` (rewritten on every demo run)\n"
                    + yaml.safe_dump(settings, sort_keys=False))  # fmt: skip
    return path

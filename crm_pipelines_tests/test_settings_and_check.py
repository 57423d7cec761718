"""Settings load and validate at load time; `crm-pipelines check` reports each connection (OPS-3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crm_pipelines.settings import SettingsError, load_settings
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

REPO = Path(__file__).resolve().parent.parent


def test_documented_example_settings_load() -> None:
    settings = load_settings(REPO / "crm_pipelines.example.yaml")
    assert settings.connections.salesforce.login == "production"
    assert settings.sync.salesforce.new_contact_type == "Lead"  # CON-5
    assert settings.sync.salesforce.conflict_window_minutes == 5  # CONF-1


def test_settings_reach_the_transform_as_its_parameters() -> None:
    """DEAL-1 custom field mappings per (CRM, object) and DEAL-2 stage mappings per CRM; dont_sync fields
    never reach the transform."""
    from crm_pipelines.defs.unified.mirrors import transform_settings

    transform = transform_settings(load_settings(REPO / "crm_pipelines.example.yaml"))
    (title,) = transform.custom_fields[("salesforce", "Contact")]
    assert (title.hubspot, title.other, title.kind) == ("jobtitle", "Title", "text")
    (standard,) = transform.stages.pipelines
    assert standard.crm == "salesforce" and standard.stages["Closed Won"] == "closedwon"
    assert transform.new_contact_type == "Lead" and transform.closed_won_sets_customer is True


def test_invalid_settings_fail_at_load_naming_key_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "connections": {"salesforce": {"login": "staging"}, "hubspot": {"api_call_limit": 0}},
                "sync": {"salesforce": {"deals": {"filters": [{"property": "amount", "operator": "in"}]}, "typo": 1}},
            }
        )
    )
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    text = str(err.value)
    assert "connections.salesforce.login: Input should be 'production' or 'sandbox'" in text
    assert "connections.hubspot.api_call_limit: Input should be greater than or equal to 1" in text
    assert "sync.salesforce.deals.filters.0: Value error, operator 'in' needs `values`" in text
    assert "sync.salesforce.typo: Extra inputs are not permitted" in text


@pytest.fixture
def sandbox(tmp_path: Path):
    running = start_sandbox(tmp_path / "sandbox", scale=200)
    yield running
    running.stop()


def _check(settings: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crm_pipelines.cli", "check", "--settings", str(settings)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_check_reports_valid_and_invalid_credentials_without_secrets(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPS-3: valid/invalid per connection with the reason; exit status non-zero when any is invalid."""
    import os

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSPOT_", "DYNAMICS_"))}
    settings = tmp_path / "s.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "sandbox": {"data_dir": str(sandbox.data_dir)},
                "connections": {"salesforce": {"enabled": False}, "dynamics": {"enabled": False}},
            }
        )
    )
    ok = _check(settings, base_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "hubspot     valid    (sandbox) credentials accepted" in ok.stdout

    real = tmp_path / "real.yaml"
    real.write_text(
        yaml.safe_dump(
            {
                "sandbox": {"data_dir": str(sandbox.data_dir)},
                "connections": {
                    "hubspot": {"base_url": sandbox.base_url},
                    "salesforce": {"enabled": False},
                    "dynamics": {"enabled": False},
                },
            }
        )
    )
    secret = "pat-na1-" + "7" * 32
    bad = _check(real, {**base_env, "HUBSPOT_ACCESS_TOKEN": secret})
    assert bad.returncode == 1
    assert "hubspot     INVALID  (api)" in bad.stdout and "HTTP 401 INVALID_AUTHENTICATION" in bad.stdout
    assert secret[8:] not in bad.stdout + bad.stderr


def test_definitions_validate_and_pin_asset_keys(tmp_path: Path) -> None:
    """The code location loads through workspace.yaml (`dagster definitions validate`)."""
    import os

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # an empty home: default local storage
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from crm_pipelines.definitions import defs

    keys = {k.to_user_string() for k in defs().resolve_asset_graph().get_all_asset_keys()}
    assert {
        "hubspot/contacts",
        "hubspot/companies",
        "hubspot/deals",
        "hubspot/pipelines",
        "hubspot/owners",
        "dynamics/contacts",
        "dynamics/opportunities",
    } <= keys

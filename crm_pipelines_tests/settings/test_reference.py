"""The configuration reference (issue 15): docs/configuration.md is what the settings model says, every key of the
example settings is documented in it, and `crm-pipelines settings reference` regenerates it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, Field

from crm_pipelines.cli import main
from crm_pipelines.settings import load_settings, reference
from crm_pipelines.settings.reference import MissingDescription, keys, render

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "crm_pipelines.example.yaml"


def test_committed_reference_matches_the_settings_model() -> None:
    committed = reference.DOC.read_text(encoding="utf-8").splitlines()
    fresh = render().splitlines()
    if committed != fresh:
        first = next((i for i, (a, b) in enumerate(zip(committed, fresh, strict=False)) if a != b),
                     min(len(committed), len(fresh)))
        pytest.fail(f"docs/configuration.md is out of date with crm_pipelines/settings/model.py (first difference at "
                    f"line {first + 1}); regenerate it with `{reference.REGENERATE}`")


def _paths(node: Any, prefix: str = "") -> list[str]:
    """The dotted paths of a YAML document's keys, a list's entries as `name[]` (as the reference writes them)."""
    if isinstance(node, dict):
        out = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            out.append(path)
            out.extend(_paths(value, f"{path}."))
        return out
    if isinstance(node, list):
        return [p for item in node for p in _paths(item, prefix.removesuffix(".") + "[].")]
    return []


def test_every_key_of_the_example_settings_is_in_the_reference() -> None:
    documented = reference.DOC.read_text(encoding="utf-8")
    mappings = {k.path for k in keys() if k.kind == "mapping"}  # their keys are the user's own (stage names, …)
    example = _paths(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    settings_keys = [p for p in example if not any(p.startswith(m + ".") for m in mappings)]
    assert len(settings_keys) > 60  # the walk found the example's keys, not just its top level
    assert "sync.salesforce.deals.pipelines[].stages" in settings_keys
    assert "sync.salesforce.field_mappings[].rule" in settings_keys
    missing = [p for p in settings_keys if f"`{p}`" not in documented]
    assert not missing, f"keys of crm_pipelines.example.yaml missing from docs/configuration.md: {missing}"


def test_the_example_settings_load_as_a_deployment_would_start() -> None:
    """The file a deployment copies: every connection to the real API, writes off until a plan is reviewed."""
    settings = load_settings(EXAMPLE)
    for crm in ("hubspot", "salesforce", "dynamics"):
        conn = getattr(settings.connections, crm)
        assert conn.target == "api", crm  # TOP-2
        assert conn.writes is False, crm  # OPS-10: `writes: off`


def test_reference_states_types_defaults_bounds_and_variables() -> None:
    text = render()
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert "| `connections.salesforce.api_version` | text matching `^\\d+\\.\\d$` | `'62.0'` |" in text  # quoted
    assert "integer ≥ 1, ≤ 3660 | `3660`" in rows["extract.partitions_per_run"]
    assert "one of `api`, `sandbox`, or `null` | `null`" in rows["connections.dynamics.target"]
    assert "`DYNAMICS_CLIENT_SECRET`" in rows["connections.dynamics.client_secret_env"]
    assert "`CRM_PIPELINES_STATE_DB_URL`" in rows["state_database_url"]
    assert "| `SALESFORCE_PRIVATE_KEY` |" in text and "| `connections.salesforce.private_key_env` |" in text
    assert "| `sync.salesforce.deals.pipelines[].other_pipeline` | text | required |" in text


def test_a_settings_field_without_description_fails_the_reference() -> None:
    class Section(BaseModel):
        documented: int = Field(1, description="has one")
        undocumented: int = 2

    class Root(BaseModel):
        section: Section = Field(Section(), description="a section")

    with pytest.raises(MissingDescription, match=r"section\.undocumented"):
        keys(Root)


def test_cli_prints_and_writes_the_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["settings", "reference"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == render()

    target = tmp_path / "docs" / "configuration.md"
    monkeypatch.setattr(reference, "DOC", target)
    no_checkout = runner.invoke(main, ["settings", "reference", "--write"])
    assert no_checkout.exit_code == 1 and "needs a checkout" in no_checkout.output

    target.parent.mkdir()
    first = runner.invoke(main, ["settings", "reference", "--write"])
    assert first.exit_code == 0 and "written" in first.output
    assert target.read_text(encoding="utf-8") == render()
    again = runner.invoke(main, ["settings", "reference", "--write"])
    assert "already up to date" in again.output


def test_every_key_the_connecting_guide_names_exists() -> None:
    """docs/connecting.md maps the SPEC's settings onto keys: each one it names is a key the settings accept."""
    import itertools
    import re

    known = {k.path for k in keys()}
    guide = (REPO / "docs" / "connecting.md").read_text(encoding="utf-8")
    named = {m.group(1) for m in re.finditer(r"`((?:connections|sync|extract|sandbox)\.[^`\s:…]+)", guide)}
    placeholders = {"<crm>": ("salesforce", "dynamics"), "<object>": ("contacts", "companies", "deals")}
    assert len(named) > 40
    unknown = []
    for name in sorted(named):
        slots = [p for p in placeholders if p in name]
        for values in itertools.product(*(placeholders[p] for p in slots)):
            path = name
            for slot, value in zip(slots, values, strict=True):
                path = path.replace(slot, value)
            if path.removesuffix("[]") not in known:
                unknown.append(path)
    assert not unknown, f"docs/connecting.md names keys the settings do not have: {unknown}"

"""Issue 15: what the asset graph says of each asset and check (the whole code location), and how the UI's
Markdown tables carry values from a CRM (one line a row, pipes escaped, secrets masked). The tables read back
from real runs are tested in ``extract/test_ui_writeback.py``."""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd
import pytest

from crm_pipelines.defs.unified.markdown import markdown_table, secret_values
from crm_pipelines.settings import Settings

RULE = re.compile(r"\b(?:TOP|CONF|CON|COM|DEAL|ROLL|DEL|OPS)-\d+")
OUR_GROUPS = ("unified", "writeback")


def _graph() -> tuple[list[dg.AssetSpec], list[dg.AssetCheckSpec]]:
    from crm_pipelines.definitions import defs

    specs, checks = [], []
    for assets_def in defs().resolve_asset_graph().assets_defs:
        specs += list(assets_def.specs)
        checks += list(assets_def.check_specs)
    return specs, checks


def test_every_asset_and_check_has_a_description() -> None:
    """Every asset and check of the code location (all five groups) says what it is in the UI."""
    specs, checks = _graph()
    assert {s.group_name for s in specs} >= {"hubspot", "salesforce", "dynamics", *OUR_GROUPS}
    bare = [s.key.to_user_string() for s in specs if len((s.description or "").strip()) < 20]
    bare += [c.key.to_user_string() for c in checks if len((c.description or "").strip()) < 20]
    assert not bare, f"no description: {bare}"


def test_unified_and_writeback_cite_their_rules_and_show_what_they_touch() -> None:
    """The ``unified`` and ``writeback`` assets and checks cite the rules they serve (IDs of docs' rules), and
    their kinds show what they touch: pandas for the transform and plans, the target CRM for plans and writes."""
    specs, checks = _graph()
    ours = [s for s in specs if s.group_name in OUR_GROUPS]
    assert len(ours) == 6 + 6
    keys = {s.key for s in ours}
    uncited = [s.key.to_user_string() for s in ours if not RULE.search(s.description or "")]
    uncited += [c.key.to_user_string() for c in checks if c.asset_key in keys and not RULE.search(c.description)]
    assert not uncited
    for spec in ours:
        name = spec.key.path[-1]
        if spec.group_name == "unified":
            assert "pandas" in spec.kinds and spec.tags.get("crm_pipelines/reads"), spec.key
        else:
            crm = name.split("_")[0]
            assert crm in spec.kinds and spec.tags.get("crm_pipelines/writes") == crm, spec.key
            assert ("pandas" in spec.kinds) == name.endswith("_plan"), spec.key


def test_a_failing_check_that_fails_on_sandbox_data_says_so() -> None:
    """The checks that warn on the sandboxes' (and so the demo's) data on purpose say it in their description."""
    _, checks = _graph()
    said = {c.name: c.description for c in checks}
    for name in ("duplicate_emails", "contacts_without_valid_email", "failed_normalization", "failed_writes"):
        assert "on purpose" in said[name], name
    assert "warns" in said["unmapped_stages"] and "sync.<crm>.deals.pipelines" in said["unmapped_stages"]


def test_markdown_cells_stay_on_their_row_and_never_show_a_secret() -> None:
    """A value a person typed with a pipe and line breaks stays in its cell, HTML is not rendered, a long value
    is cut short, and the value of a secret's variable is masked wherever it appears (an API's error text)."""
    frame = pd.DataFrame({"record": ["1", "2", "3"], "value": [
        "Smith | Jones\nsecond line\r\nthird", "<b>bold</b>", "x" * 500]})
    secret = "pat-na1-0123456789abcdef"
    errors = pd.DataFrame({"code": ["INVALID"], "message": [f"token {secret} is not valid"]})
    table = markdown_table(frame, ["record", "value"])
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[2] == "| 1 | Smith \\| Jones second line third |"
    assert "<b>" not in table and "&lt;b&gt;bold&lt;/b&gt;" in lines[3]
    assert len(lines[4]) < 100 and lines[4].endswith("… |")
    shown = markdown_table(errors, ["code", "message"], secrets=[secret])
    assert secret not in shown and "token *** is not valid" in shown
    assert markdown_table(frame.iloc[:0], ["record"]) == "_none_"


def test_the_secrets_masked_are_the_values_of_the_variables_the_settings_name() -> None:
    settings = Settings.model_validate({"connections": {"salesforce": {"client_secret_env": "MY_SF_SECRET"}}})
    environment = {"MY_SF_SECRET": "s3cr3t-value", "HUBSPOT_ACCESS_TOKEN": "pat-na1-abcdef", "HOME": "/home/me",
                   "DYNAMICS_TENANT_ID": "1"}
    assert set(secret_values(settings, environment)) == {"s3cr3t-value", "pat-na1-abcdef"}


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA])
def test_a_missing_value_is_an_empty_cell(value: object) -> None:
    frame = pd.DataFrame({"a": [value], "b": ["x"]}, dtype=object)
    assert markdown_table(frame, ["a", "b"]).splitlines()[2] == "|  | x |"

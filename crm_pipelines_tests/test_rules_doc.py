"""Issue 15: `docs/RULES.md`, the rules users look up when a description, finding or log line cites one, holds
what the code does: every rule the code or the README cites has its section, and every setting, Dagster
definition, command and test file a section names exists. Reads only the repository (never ../shared)."""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import click
import dagster as dg
import pytest
from pydantic import BaseModel

from crm_pipelines.cli import main as cli
from crm_pipelines.rules_doc import (
    RULES_DOC,
    RULES_URL_ENV,
    anchor,
    cited_rules,
    rule_ref,
    rule_refs,
    with_rule_refs,
)
from crm_pipelines.settings.load import SETTINGS_ENV
from crm_pipelines.settings.model import Settings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / RULES_DOC
RULE_HEADING = re.compile(r"^### (.+?)\s*$", re.M)
STATUSES = ("implemented", "partly", "differs")
# what a "Shown by" line may name; a parenthesized note (metadata the asset shows) is prose, not a name
SHOWN = re.compile(r"check `(?P<check>[^`]+)` on `(?P<on>[^`]+)`|(?P<kind>asset|job|sensor|schedule|command) "
                   r"`(?P<name>[^`]+)`")


@dataclass(frozen=True)
class Section:
    rule: str
    text: str

    def line(self, label: str) -> str:
        found = re.findall(rf"^- {label}: (.*)$", self.text, re.M)
        assert len(found) == 1, f"{self.rule}: expected one '- {label}:' line, found {len(found)}"
        return found[0]

    def names(self, label: str) -> list[str]:
        return re.findall(r"`([^`]+)`", self.line(label))


def _sections() -> dict[str, Section]:
    text = DOC.read_text(encoding="utf-8")
    heads = list(RULE_HEADING.finditer(text))
    out: dict[str, Section] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[head.end():end].split("\n## ", 1)[0]  # a group heading ends the section too
        assert head.group(1) not in out, f"{head.group(1)} has two sections"
        out[head.group(1)] = Section(head.group(1), body)
    return out


SECTIONS = _sections()


def _github_slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_rule_the_code_and_readme_cite_has_its_section() -> None:
    """(a) A rule ID anywhere in `crm_pipelines/` (code, descriptions, sandboxes), the example settings or the
    README, shorthand included (`CON-2/3/11`, `DEAL-1..5`), has its section in docs/RULES.md."""
    sources = [*sorted((ROOT / "crm_pipelines").rglob("*.py")), ROOT / "crm_pipelines.example.yaml", ROOT / "README.md"]
    missing: dict[str, list[str]] = {}
    cited: set[str] = set()
    for path in sources:
        found = cited_rules(path.read_text(encoding="utf-8"))
        cited |= found
        for rule in found - set(SECTIONS):
            missing.setdefault(rule, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"rules cited without a section in {RULES_DOC}: {missing}"
    assert {"OPS-7", "CON-2", "DEAL-5", "TOP-1"} <= cited  # the scan reads what it should


def test_each_section_is_one_rule_with_its_status_settings_places_and_tests() -> None:
    """Every section's heading is one rule ID, whose anchor is what `rule_ref` links to, and the section says its
    status and lists its settings, where it is shown and its tests, each on its own line."""
    assert len(SECTIONS) >= 48
    for rule, section in SECTIONS.items():
        assert cited_rules(rule) == {rule}, f"heading {rule!r} is not exactly one rule ID"
        assert _github_slug(rule) == anchor(rule)
        assert section.line("Status").startswith(STATUSES), f"{rule}: status must start with one of {STATUSES}"
        for label in ("Settings", "Shown by", "Tested by"):
            line = section.line(label)
            assert section.names(label) or line.startswith("none"), f"{rule}: '{label}' names nothing, say none"
        assert len(section.text.split("- Status:")[0].strip()) > 40, f"{rule}: no description of what the sync does"


def test_links_inside_the_doc_reach_a_heading() -> None:
    """The index and the cross-references (`[CON-1](#con-1)`) point at headings that exist."""
    text = DOC.read_text(encoding="utf-8")
    slugs = {_github_slug(h) for h in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and targets <= slugs, f"links to missing headings: {sorted(targets - slugs)}"
    assert {anchor(rule) for rule in SECTIONS} <= targets  # the index lists every rule


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def settings_key_exists(path: str) -> bool:
    """Whether ``path`` (dotted, ``name[]`` for an item of a list) is a key of the settings model tree."""
    node: Any = Settings
    for part in path.split("."):
        many = part.endswith("[]")
        name = part.removesuffix("[]")
        if not (isinstance(node, type) and issubclass(node, BaseModel)) or name not in node.model_fields:
            return False
        node = _unwrap(node.model_fields[name].annotation)
        if many:
            if get_origin(node) is not list:
                return False
            node = _unwrap(get_args(node)[0])
    return True


def test_the_settings_walk_tells_keys_from_typos() -> None:
    """The walk below finds nested keys and list items, and refuses a typo, a key under a leaf and a `[]` on a
    key that is no list (else test (b) would pass whatever the doc says)."""
    assert settings_key_exists("sync.salesforce.field_mappings[].rule")
    assert settings_key_exists("sync.dynamics.deals.pipelines[].stages")
    assert settings_key_exists("connections.salesforce.login_url")
    assert not settings_key_exists("sync.salesforce.field_mapping[].rule")
    assert not settings_key_exists("sync.salesforce.conflict_window_minutes.value")
    assert not settings_key_exists("sync.salesforce.default_app[]")
    assert not settings_key_exists("sync.hubspot.default_app")


def test_every_settings_key_the_doc_names_exists() -> None:
    """(b) Each key on a "Settings:" line is a key of the settings model, as a user writes it in the YAML."""
    unknown = {rule: [k for k in s.names("Settings") if not settings_key_exists(k)] for rule, s in SECTIONS.items()}
    unknown = {rule: keys for rule, keys in unknown.items() if keys}
    assert not unknown, f"settings keys that do not exist: {unknown}"
    named = {k for s in SECTIONS.values() for k in s.names("Settings")}
    assert len(named) > 60


@pytest.fixture(scope="module")
def loaded() -> tuple[dg.Definitions, Any]:
    """The project's Definitions and asset graph, loaded with the default settings (every connection enabled), as
    `test_dagster_instance.py` loads them, and without CRM_PIPELINES_RULES_URL (descriptions cite the doc's path)."""
    from crm_pipelines.definitions import defs

    with pytest.MonkeyPatch.context() as env:
        env.delenv(SETTINGS_ENV, raising=False)
        env.delenv(RULES_URL_ENV, raising=False)
        found = defs()
        return found, found.resolve_asset_graph()


@pytest.fixture(scope="module")
def definitions(loaded: tuple[dg.Definitions, Any]) -> dict[str, set]:
    """The names the project's Definitions hold."""
    found, graph = loaded
    return {
        "asset": {"/".join(k.path) for k in graph.get_all_asset_keys()},
        "check": {("/".join(k.asset_key.path), k.name) for k in graph.asset_check_keys},
        "job": {j.name for j in found.resolve_all_job_defs()},
        "sensor": {s.name for s in found.sensors or []},
        "schedule": {s.name for s in found.schedules or []},
    }


def _command_exists(line: str) -> bool:
    words = line.split()
    if words[:1] != ["crm-pipelines"]:
        return False
    node: click.Command = cli
    for word in words[1:]:
        if not isinstance(node, click.Group) or word not in node.commands:
            return False
        node = node.commands[word]
    return True


def test_every_dagster_name_and_command_the_doc_names_exists(definitions: dict[str, set]) -> None:
    """(c) Each asset, asset check (on its asset), job, sensor, schedule and `crm-pipelines` command on a
    "Shown by:" line exists in the project's Definitions and CLI; nothing else is named there."""
    wrong: list[str] = []
    for rule, section in SECTIONS.items():
        line = re.sub(r"\([^)]*\)", "", section.line("Shown by"))
        for item in SHOWN.finditer(line):
            if item["check"]:
                if (item["on"], item["check"]) not in definitions["check"]:
                    wrong.append(f"{rule}: check {item['check']} on {item['on']}")
            elif item["kind"] == "command":
                if not _command_exists(item["name"]):
                    wrong.append(f"{rule}: command {item['name']}")
            elif item["name"] not in definitions[item["kind"]]:
                wrong.append(f"{rule}: {item['kind']} {item['name']}")
        unparsed = re.findall(r"`[^`]+`", SHOWN.sub("", line))
        assert not unparsed, f"{rule}: 'Shown by' names {unparsed} without a kind (asset, check … on, job, …)"
    assert not wrong, f"named but not defined: {wrong}"


def test_the_commands_check_is_not_fooled() -> None:
    assert _command_exists("crm-pipelines bench sync") and _command_exists("crm-pipelines check")
    assert not _command_exists("crm-pipelines bench nothing") and not _command_exists("crm-pipelines check now")


def test_every_test_file_the_doc_names_exists_and_cites_its_rule() -> None:
    """(d) Each file on a "Tested by:" line exists under crm_pipelines_tests/ and cites the rule it is listed for
    (the tests are named after rule IDs), so the doc never points at a test that proves something else."""
    wrong: list[str] = []
    for rule, section in SECTIONS.items():
        for name in section.names("Tested by"):
            path = ROOT / name
            if not (name.startswith("crm_pipelines_tests/") and name.endswith(".py") and path.is_file()):
                wrong.append(f"{rule}: {name} does not exist")
            elif rule not in cited_rules(path.read_text(encoding="utf-8")):
                wrong.append(f"{rule}: {name} does not cite it")
    assert not wrong, wrong


def test_rule_ref_points_at_the_rules_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rule_ref` gives a description's reference to a rule's section: the path and anchor as text by default,
    a Markdown link once `CRM_PIPELINES_RULES_URL` says where the doc is hosted; a non-ID is refused."""
    monkeypatch.delenv(RULES_URL_ENV, raising=False)
    assert rule_ref("CON-2") == "CON-2 (docs/RULES.md#con-2)"
    assert rule_refs("CON-2", "CON-11") == "CON-2, CON-11 (docs/RULES.md: #con-2, #con-11)"
    assert rule_refs("OPS-7") == rule_ref("OPS-7")
    monkeypatch.setenv(RULES_URL_ENV, "https://git.example.com/crm_pipelines/blob/main/docs/RULES.md")
    assert rule_ref("OPS-10") == "[OPS-10](https://git.example.com/crm_pipelines/blob/main/docs/RULES.md#ops-10)"
    assert rule_refs("CONF-1", "CONF-2").count("](https://") == 2
    for bad in ("CON-2/3", "con-2", "CONF-*", "XYZ-1", "CON-0"):
        with pytest.raises(ValueError):
            rule_ref(bad)
    # every section's anchor is the one rule_ref links to
    for rule in SECTIONS:
        assert rule_ref(rule).endswith(f"#{_github_slug(rule)})")


def test_cited_rules_reads_the_codes_shorthand() -> None:
    assert cited_rules("CON-2/3/4/11; DEAL-1..3, OPS-2/OPS-8 and CONF-* (DEL-5)") == {
        "CON-2", "CON-3", "CON-4", "CON-11", "DEAL-1", "DEAL-2", "DEAL-3", "OPS-2", "OPS-8", "DEL-5"}
    assert cited_rules("CONF-6 RECON-1 UTF-8") == {"CONF-6"}


def test_dagster_definitions_fixture_sees_the_sync(definitions: dict[str, set]) -> None:
    """The names (c) compares against are the deployed ones, not an empty load."""
    assert "crm_change_sensor" in definitions["sensor"] and "sync_job" in definitions["job"]
    assert ("unified/contact_identities", "duplicate_emails") in definitions["check"]
    assert dg.AssetKey(["writeback", "hubspot_plan"]).to_user_string() in definitions["asset"]


def _descriptions(found: dg.Definitions, graph: Any) -> dict[str, str]:
    """Every description the Dagster UI shows: assets, checks, jobs, sensors, schedules."""
    out = {f"asset {key.to_user_string()}": graph.get(key).description or "" for key in graph.get_all_asset_keys()}
    for key in graph.asset_check_keys:
        out[f"check {key.name} on {key.asset_key.to_user_string()}"] = graph.get(key).description or ""
    out |= {f"job {job.name}": job.description or "" for job in found.resolve_all_job_defs()}
    out |= {f"sensor {s.name}": s.description or "" for s in found.sensors or []}
    out |= {f"schedule {s.name}": s.description or "" for s in found.schedules or []}
    return out


def test_every_rule_a_dagster_description_cites_points_at_its_section(loaded: tuple[dg.Definitions, Any]) -> None:
    """Issue 15: a description that cites a rule (CON-2, OPS-7, ...) says where it is explained: each cited rule's
    anchor in docs/RULES.md, which has that section."""
    described = _descriptions(*loaded)
    assert len(described) > 40 and sum(bool(cited_rules(t)) for t in described.values()) > 20
    unlinked = {
        name: sorted(rule for rule in cited_rules(text) if f"#{anchor(rule)}" not in text or rule not in SECTIONS)
        for name, text in described.items()
    }
    assert not {name: rules for name, rules in unlinked.items() if rules}


def test_with_rule_refs_appends_each_cited_rule_once_in_spec_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_URL_ENV, raising=False)
    assert with_rule_refs("No rule here.") == "No rule here."
    text = with_rule_refs("OPS-7 and CON-11/CON-2: duplicates (CON-2).")
    assert text.endswith("\n\nRules: CON-2, CON-11, OPS-7 (docs/RULES.md: #con-2, #con-11, #ops-7)")

"""DESIGN.md's dependency rule (issue 11): nothing on the sync path imports the sandboxes or the tests, and
the sandboxes import nothing of the product (they are the other side of the wire)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crm_pipelines"
SYNC_PATH = ("crm", "extract", "state", "transform", "sync", "defs", "settings")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("part", SYNC_PATH)
def test_the_sync_path_never_imports_the_sandbox_or_the_tests(part: str) -> None:
    offending = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / part).rglob("*.py")
        for name in _imports(path)
        if name.startswith(("crm_pipelines.sandbox", "crm_pipelines_tests"))
    }
    assert not offending


def test_the_sandboxes_import_nothing_of_the_product() -> None:
    offending = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "sandbox").rglob("*.py")
        for name in _imports(path)
        if name.startswith("crm_pipelines.") and not name.startswith("crm_pipelines.sandbox")
    }
    assert not offending

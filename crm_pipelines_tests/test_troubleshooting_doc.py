"""docs/troubleshooting.md quotes the errors the code raises (issue 15); each section names, in a comment, the
literal fragments of source it quotes. This fails when one of them is no longer in the code, so a message
changed in the code cannot leave the document describing an error nobody sees any more."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "troubleshooting.md"


def test_every_quoted_error_is_still_raised_by_the_code() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "crm_pipelines").rglob("*.py"))
    sections = re.findall(r"^## (.+)\n<!-- raised: (.+?) -->", DOC.read_text(), re.M)
    assert len(sections) == DOC.read_text().count("\n## "), "every section names what it quotes"
    gone = [(title, fragment) for title, fragments in sections for fragment in fragments.split(" | ")
            if fragment not in source]  # fmt: skip
    assert not gone, f"quoted in docs/troubleshooting.md but no longer in crm_pipelines/: {gone}"

"""Markdown tables for the Dagster UI's metadata (issue 15): small, escaped, and free of the connections' secrets.

A value from a CRM can hold anything a person typed: a pipe would split a cell, a newline would end the table's
row, ``<`` would be read as HTML. Each cell is made one line, escaped, and cut to ``WIDTH`` characters so that a
table of a few dozen rows stays small in the event log. The values of the variables that hold the connections'
secrets (``*_env`` settings) are replaced by ``***`` wherever they appear (an API's error text may quote what it
was sent; OPS-3: secrets never appear in metadata)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pandas as pd

from crm_pipelines.settings import Settings

SAMPLE = 20
WIDTH = 80
NONE = "_none_"
_SPACE = re.compile(r"[\r\n\t\v\f]+")
_MIN_SECRET = 6  # shorter values (a stray "1", a flag) would blank out ordinary text


def secret_values(settings: Settings, environment: Mapping[str, str | None]) -> list[str]:
    """The values of the variables the settings name for the connections' secrets (``*_env``), longest first."""
    found = set()
    for crm in ("hubspot", "salesforce", "dynamics"):
        conn = getattr(settings.connections, crm)
        for name, value in conn:
            if name.endswith("_env") and isinstance(value, str):
                secret = environment.get(value) or ""
                if len(secret) >= _MIN_SECRET:
                    found.add(secret)
    return sorted(found, key=len, reverse=True)


def _missing(value: object) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def cell(value: object, secrets: Iterable[str] = (), width: int = WIDTH) -> str:
    """``value`` as one Markdown table cell: on one line, pipes and HTML escaped, secrets masked, cut short."""
    if _missing(value):
        return ""
    text = str(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _SPACE.sub(" ", text).strip()
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(frame: pd.DataFrame, cols: list[str], sample: int = SAMPLE, secrets: Iterable[str] = (),
                   headers: list[str] | None = None) -> str:
    """A Markdown table of ``frame``'s first ``sample`` rows (``cols``, titled ``headers``), or ``_none_``."""
    if frame.empty:
        return NONE
    secrets = list(secrets)
    titles = headers or cols
    lines = ["| " + " | ".join(cell(t) for t in titles) + " |", "|" + "---|" * len(cols)]
    for row in frame.reindex(columns=cols).head(sample).itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, secrets) for v in row) + " |")
    return "\n".join(lines)


def shown_of(shown: int, total: int, what: str) -> str:
    """The line above a sample: how much of the whole it is."""
    return f"{total} {what}" if shown >= total else f"first {shown} of {total} {what}"

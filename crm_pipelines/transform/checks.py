"""Asset-check results as plain data (count + small sample), so the Dagster checks stay one-liners.

Each function returns ``CheckOutcome``; ``passed`` is False when anything is found (the check's severity -
warn or block write-back - is the Dagster layer's choice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SAMPLE = 10


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    count: int
    by: dict[str, int] = field(default_factory=dict)  # counts per CRM / reason
    sample: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"count": self.count, "by": self.by, "sample": self.sample}


def _sample(frame: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    head = frame.head(n).astype(object)
    return head.where(head.notna(), None).to_dict(orient="records")


def outcome(name: str, counts: dict[tuple, int], sample: pd.DataFrame) -> CheckOutcome:
    """A check's result from its counts per group (``"crm/reason"`` keys) and its sample rows."""
    total = sum(counts.values())
    return CheckOutcome(name, total == 0, total, {"/".join(map(str, k)): v for k, v in counts.items()},
                        _sample(sample, len(sample)))


def _outcome(name: str, frame: pd.DataFrame, by: list[str], n: int) -> CheckOutcome:
    counts = frame.groupby(by, dropna=False).size() if len(frame) else pd.Series(dtype=int)
    return outcome(name, {k if isinstance(k, tuple) else (k,): int(v) for k, v in counts.items()}, frame.head(n))


def duplicate_emails(findings: pd.DataFrame, n: int = SAMPLE) -> CheckOutcome:
    """CON-11: records of one CRM sharing an email with the linked winner (``ContactIdentities.findings``)."""
    f = findings.sort_values(["crm", "email", "id"])
    return _outcome("duplicate_emails", f, ["crm", "reason"], n)


def unmapped_stages(deal_stages: pd.DataFrame, n: int = SAMPLE) -> CheckOutcome:
    """DEAL-2: deals in stages (or Dynamics processes) without a mapping; sample grouped per stage."""
    bad = deal_stages[deal_stages["status"].isin(["unmapped_stage", "unmapped_pipeline"])]
    per_stage = bad.groupby(["crm", "pipeline", "stage"]).size().rename("deals").reset_index()
    out = _outcome("unmapped_stages", bad, ["crm", "status"], n)
    return CheckOutcome(out.name, out.passed, out.count, out.by, _sample(per_stage, n))


def failed_normalization(field_findings: pd.DataFrame, n: int = SAMPLE) -> CheckOutcome:
    """CON-10 and type conversion: per-record values that could not be converted."""
    return _outcome("failed_normalization", field_findings, ["crm", "field"], n)


def contacts_without_valid_email(members: pd.DataFrame, n: int = SAMPLE) -> CheckOutcome:
    """CON-3: live contact records with no email or an invalid one (they sync only through existing links)."""
    bad = members.loc[~members["email_valid"], ["crm", "type", "id", "email", "identity_id", "role"]]
    bad = bad.assign(problem=bad["email"].isna().map({True: "missing", False: "invalid"}))
    return _outcome("contacts_without_valid_email", bad, ["crm", "problem"], n)

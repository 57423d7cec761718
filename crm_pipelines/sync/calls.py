"""What executing a plan costs in API calls, and what of it fits the 24 h budget (OPS-2, OPS-8).

Writes go in each API's largest batch (``BATCH``; ``../shared/specs/*/FACTS.md``): HubSpot's batch create and
update take 100 records, Salesforce's sObject Collections 200, a Dataverse ``$batch`` 1,000 operations. A
batch holds one object type and one action, so the minimum is the sum over them of ceil(records / batch).

When the calls left in the 24 h budget do not cover a plan, the plan keeps what fits, in this order, and
defers the rest to a later run (shown as deferred, never dropped): updates of linked records before creates
(keeping records that already correspond consistent comes first), then by object (contacts, companies,
deals, tasks), then by record id, so the same plan defers the same records every time."""

from __future__ import annotations

import math

import pandas as pd

BATCH = {"hubspot": 100, "salesforce": 200, "dynamics": 1_000}
ACTION_ORDER = ("update", "create")
OBJECT_ORDER = ("contact", "company", "deal", "task")
WORK_COLUMNS = ("action", "object", "record_id")


def calls_needed(crm: str, work: pd.DataFrame) -> int:
    """The fewest calls that write ``work`` (``WORK_COLUMNS``, one row per record to write)."""
    if work.empty:
        return 0
    sizes = work.groupby(["action", "object"]).size()
    return int(sum(math.ceil(n / BATCH[crm]) for n in sizes))


def fit_budget(crm: str, work: pd.DataFrame, calls_left: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``work`` split into what fits ``calls_left`` (None: no limit) and what is deferred, in the order above."""
    if calls_left is None or calls_needed(crm, work) <= calls_left:
        return work, work.iloc[:0]
    ordered = work.assign(
        _a=work["action"].map({a: i for i, a in enumerate(ACTION_ORDER)}).fillna(len(ACTION_ORDER)),
        _o=work["object"].map({o: i for i, o in enumerate(OBJECT_ORDER)}).fillna(len(OBJECT_ORDER)),
    ).sort_values(["_a", "_o", "record_id"], kind="stable")
    keep = pd.Series(False, index=ordered.index)
    left = max(calls_left, 0)
    for _, group in ordered.groupby(["_a", "_o"], sort=True):
        if left <= 0:
            break
        take = min(len(group), left * BATCH[crm])
        keep[group.index[:take]] = True
        left -= math.ceil(take / BATCH[crm])
    ordered = ordered.drop(columns=["_a", "_o"])
    return ordered[keep.loc[ordered.index].to_numpy()], ordered[~keep.loc[ordered.index].to_numpy()]

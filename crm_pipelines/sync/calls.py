"""What executing a plan costs in API calls, and what of it fits the 24 h budget (OPS-2, OPS-8).

Writes go in each API's largest batch (``BATCH``; ``../shared/specs/*/FACTS.md``): HubSpot's batch create and
update take 100 records, Salesforce's sObject Collections 200, a Dataverse ``$batch`` 1,000 operations. A
batch holds one object type and one action, so the minimum is the sum over them of ceil(records / batch).
A HubSpot pipeline, or a stage added to one, is one call each (the pipelines API has no batch; DEAL-3).
Associations are batched like records: HubSpot's v4 batch create takes 100 (its limit is unverified, so the
records' limit is assumed), a Salesforce OpportunityContactRole is a record of sObject Collections, and the
single-valued ones (``Contact.AccountId``, a Dataverse lookup) are fields of the record's update. Deletes
are batched alike: HubSpot's batch archive takes 100 ids, Salesforce's sObject Collections delete 200, a
Dataverse ``$batch`` 1,000 operations.

When the calls left in the 24 h budget do not cover a plan, the plan keeps what fits, in this order, and
defers the rest to a later run (shown as deferred, never dropped): updates of linked records before creates
(keeping records that already correspond consistent comes first), then deletes carried from the other app
(DEL-2, DEL-3: they too concern records that correspond), creates before associations (an
association needs both its records), then by object (pipelines first, since deals are created into them;
then contacts, companies, deals, tasks, then the associations contact->company, deal->contact,
deal->company), then by record id, so the same plan defers the same records every time."""

from __future__ import annotations

import math

import pandas as pd

BATCH = {"hubspot": 100, "salesforce": 200, "dynamics": 1_000}
# one call per record, whatever the API's batch size
UNBATCHED = {("hubspot", "pipeline"), ("hubspot", "pipeline_stage")}
ACTION_ORDER = ("update", "delete", "create", "associate")
OBJECT_ORDER = ("pipeline", "pipeline_stage", "contact", "company", "deal", "task", "contact_company",
                "deal_contact", "deal_company")
WORK_COLUMNS = ("action", "object", "record_id")


def calls_needed(crm: str, work: pd.DataFrame) -> int:
    """The fewest calls that write ``work`` (``WORK_COLUMNS``, one row per record to write)."""
    if work.empty:
        return 0
    sizes = work.groupby(["action", "object"]).size()
    return int(sum(math.ceil(n / batch_size(crm, obj)) for (_action, obj), n in sizes.items()))


def batch_size(crm: str, obj: str) -> int:
    """Records of ``obj`` one call writes to ``crm``."""
    return 1 if (crm, obj) in UNBATCHED else BATCH[crm]


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
    for _, group in ordered.groupby(["_a", "_o", "object"], sort=True):
        if left <= 0:
            break
        size = batch_size(crm, str(group["object"].iloc[0]))
        take = min(len(group), left * size)
        keep[group.index[:take]] = True
        left -= math.ceil(take / size)
    ordered = ordered.drop(columns=["_a", "_o"])
    return ordered[keep.loc[ordered.index].to_numpy()], ordered[~keep.loc[ordered.index].to_numpy()]

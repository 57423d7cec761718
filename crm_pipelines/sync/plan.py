"""One target CRM's plan (OPS-5: a dry run) in one shape for every object: creates, field updates, deletes
(DEL-1..3), association changes, candidates left out with why, and findings (values the sync will not guess,
such as unmapped stages), plus the work it takes in API calls (OPS-8).

Every frame has an ``object`` column (``contact``, ``company``, ``deal``, ``pipeline``, ``pipeline_stage``),
so the plan is counted per object and action, and the budget defers in its documented order
(``sync/calls.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from crm_pipelines.sync.create_values import CREATE_VALUE_COLUMNS
from crm_pipelines.sync.field_plan import UPDATE_COLUMNS

# a record to create: from which CRM's record, as which type, and one line a user recognises it by
# (deals also state the pipeline and stage they are created in)
CREATE_COLUMNS = ("object", "identity_id", "source_crm", "source_id", "object_type", "detail", "pipeline", "stage")
# a candidate not created (or an association not made), and the rule that left it out
LEFT_OUT_COLUMNS = ("object", "identity_id", "source_crm", "source_id", "target_crm", "reason")
# a record the sync reports instead of guessing (DEAL-2 unmapped stage, DEAL-4 closedness): the record, and
# the CRM it was not written to
FINDING_COLUMNS = ("object", "crm", "id", "target_crm", "reason")
# an association to make in the target: between which records, from which CRM's association, written how
# a record to delete in the target (DEL-2, DEL-3): which one, and the deletion in the other app that carries it
DELETE_COLUMNS = ("object", "record_id", "object_type", "deleted_crm", "deleted_id", "deleted_type", "deleted_at",
                  "rule")
ASSOCIATION_COLUMNS = ("object", "from_identity", "to_identity", "from_id", "to_id", "source_crm", "via",
                       "action", "record_id")  # fmt: skip


def frame(columns: Iterable[str], rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """``rows`` with exactly ``columns`` (missing ones empty); an empty frame of them when None."""
    columns = list(columns)
    if rows is None or rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return rows.reindex(columns=columns).reset_index(drop=True)


def concat(columns: Iterable[str], parts: Iterable[pd.DataFrame | None]) -> pd.DataFrame:
    columns = list(columns)
    kept = [frame(columns, p) for p in parts if p is not None and len(p)]
    return pd.concat(kept, ignore_index=True) if kept else frame(columns)


@dataclass
class TargetPlan:
    """What the sync would write to one CRM."""

    crm: str
    creates: pd.DataFrame = field(default_factory=lambda: frame(CREATE_COLUMNS))
    updates: pd.DataFrame = field(default_factory=lambda: frame(UPDATE_COLUMNS))
    associations: pd.DataFrame = field(default_factory=lambda: frame(ASSOCIATION_COLUMNS))
    deletes: pd.DataFrame = field(default_factory=lambda: frame(DELETE_COLUMNS))
    # the field values each create carries (``sync/create_values.py``): part of its create, not a write of its own
    create_values: pd.DataFrame = field(default_factory=lambda: frame((*CREATE_VALUE_COLUMNS, "api_value")))
    left_out: pd.DataFrame = field(default_factory=lambda: frame(LEFT_OUT_COLUMNS))
    # deletions in the other app not carried to this one, and the rule (DEL-1..3, CON-1): ``not deleted: <rule>``
    not_deleted: pd.DataFrame = field(default_factory=lambda: frame(LEFT_OUT_COLUMNS))
    findings: pd.DataFrame = field(default_factory=lambda: frame(FINDING_COLUMNS))

    def work(self) -> pd.DataFrame:
        """One row per write the plan takes (``action``, ``object``, ``record_id``): a record's updates are
        one write, however many fields (and single-valued associations, which are fields) change."""
        assoc = self.associations
        # a single-valued association is a field of the record's update: written by the same call
        as_field = assoc["via"].map(_FIELD_OWNER)
        assoc_object = as_field.where(assoc["action"].eq("update") & as_field.notna(), assoc["object"])
        parts = [
            pd.DataFrame({"action": "update", "object": self.updates["kind"].astype(object).to_numpy(),
                          "record_id": self.updates["record_id"].astype(str).to_numpy()}),
            pd.DataFrame({"action": "create", "object": self.creates["object"].astype(object).to_numpy(),
                          "record_id": self.creates["source_id"].astype(str).to_numpy()}),
            pd.DataFrame({"action": "delete", "object": self.deletes["object"].astype(object).to_numpy(),
                          "record_id": self.deletes["record_id"].astype(str).to_numpy()}),
            pd.DataFrame({"action": assoc["action"].astype(object).to_numpy(),
                          "object": assoc_object.astype(object).to_numpy(),
                          "record_id": assoc["record_id"].astype(str).to_numpy()}),
        ]  # fmt: skip
        return pd.concat(parts, ignore_index=True).astype(object).drop_duplicates(ignore_index=True)

    def counts(self) -> pd.DataFrame:
        """Records per object and action (``create``, ``update``, ``delete``, ``associate``, ``left out``,
        ``not deleted``, ``finding``)."""
        parts = [
            self.creates.groupby("object").size().rename("create"),
            self.updates.groupby("kind")["record_id"].nunique().rename("update"),
            self.deletes.groupby("object").size().rename("delete"),
            self.associations.groupby("object").size().rename("associate"),
            self.left_out.groupby("object").size().rename("left out"),
            self.not_deleted.groupby("object").size().rename("not deleted"),
            self.findings.groupby("object").size().rename("finding"),
        ]
        out = pd.concat(parts, axis=1).fillna(0).astype(int)
        out.index.name = "object"
        return out.reindex(columns=["create", "update", "delete", "associate", "left out", "not deleted", "finding"],
                           fill_value=0)


# which record's update carries a single-valued association (the field named by ``via``)
_FIELD_OWNER = {"Contact.AccountId": "contact", "Opportunity.AccountId": "deal",
                "contact.parentcustomerid": "contact", "lead.parentaccountid": "contact",
                "opportunity.parentcontactid": "deal", "opportunity.parentaccountid": "deal"}  # fmt: skip

"""The HubSpot pipelines the deal creates need, as the pipelines API takes them (DEAL-3, DEAL-4).

A deal of a Salesforce record type without a mapping goes to the HubSpot pipeline ``Salesforce - <RecordTypeId>``
with the Salesforce stage names (``deal_plan.py``). Before its deals are written, that pipeline (or the stages it
lacks) is created: each stage labelled as the Salesforce stage, closed-won / closed-lost as Salesforce says
(``isClosed``; probability 1 for won, 0 for lost, so HubSpot reads the deal as won or lost alike: DEAL-4),
an open one at its Salesforce stage's default probability.

A pipeline is found again by its label (HubSpot refuses a second pipeline with a label taken), so creating them
needs no outbox: the writes list HubSpot's pipelines first and create only what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

OPEN_PROBABILITY = 0.5  # an open stage Salesforce gives no default probability for


@dataclass(frozen=True)
class PipelineWork:
    """Pipelines to create (label -> stages) and stages to add (HubSpot pipeline id -> stages)."""

    create: dict[str, list[dict[str, Any]]]
    add: dict[str, list[dict[str, Any]]]

    @property
    def calls(self) -> int:
        return len(self.create) + sum(len(s) for s in self.add.values())


def _stage(label: str, closed: bool, won: bool, order: int, probability: float | None) -> dict[str, Any]:
    chance = 1.0 if won else 0.0 if closed else (OPEN_PROBABILITY if probability is None else probability)
    return {"label": label, "displayOrder": order,
            "metadata": {"isClosed": "true" if closed else "false", "probability": str(chance)}}  # fmt: skip


def _flag(value: object) -> bool:
    return bool(pd.notna(value) and value)


def pipeline_work(deals: pd.DataFrame, existing: Sequence[Mapping[str, Any]],
                  probabilities: Mapping[str, float] | None = None) -> PipelineWork:
    """``deals``: the HubSpot deal creates into new pipelines (``pipeline`` label, ``stage`` Salesforce stage
    name, ``is_closed``, ``is_won``); ``existing``: HubSpot's pipelines as its API lists them;
    ``probabilities``: Salesforce stage name -> its default probability (0..1)."""
    probabilities = probabilities or {}
    by_label = {str(p["label"]): p for p in existing}
    wanted = deals.groupby(["pipeline", "stage"], sort=True, dropna=True).agg(
        is_closed=("is_closed", "max"), is_won=("is_won", "max")).reset_index()
    create: dict[str, list[dict[str, Any]]] = {}
    add: dict[str, list[dict[str, Any]]] = {}
    for label, stages in wanted.groupby("pipeline", sort=True):
        rows = [(str(r["stage"]), _flag(r["is_closed"]), _flag(r["is_won"])) for r in stages.to_dict("records")]
        rows.sort(key=lambda r: (r[1], not r[2], r[0]))  # open stages first, then won, then lost
        pipeline = by_label.get(str(label))
        if pipeline is None:
            create[str(label)] = [_stage(s, c, w, i, probabilities.get(s)) for i, (s, c, w) in enumerate(rows)]
            continue
        have = {str(s["label"]) for s in pipeline.get("stages") or []}
        missing = [(s, c, w) for s, c, w in rows if s not in have]
        if missing:
            start = len(pipeline.get("stages") or [])
            add[str(pipeline["id"])] = [_stage(s, c, w, start + i, probabilities.get(s))
                                        for i, (s, c, w) in enumerate(missing)]  # fmt: skip
    return PipelineWork(create, add)


def stage_ids(pipelines: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(pipeline label, stage label) -> (pipeline id, stage id): how a deal planned into a new pipeline, named by
    labels, is written."""
    return {(str(p["label"]), str(s["label"])): (str(p["id"]), str(s["id"]))
            for p in pipelines for s in p.get("stages") or []}  # fmt: skip

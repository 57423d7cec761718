"""Pipeline and stage mapping (DEAL-2, DEAL-3, DEAL-4) and the auto-map proposal.

The other CRM's "pipeline" is a Salesforce RecordTypeId (``"standard"`` when the org has no record
types, i.e. one pipeline) or, for Dynamics, ``"standard"`` (its single sales process). A stage is the
Salesforce ``StageName`` or, for Dynamics, the business-process step (``Qualify`` .. ``Close``) of an
open opportunity and ``Won``/``Lost`` from ``statecode`` of a closed one.

Only deals in mapped stages sync; everything else is reported with a status, never guessed:

- ``mapped``: the (pipeline, stage) pair is in the settings;
- ``unmapped_stage``: the pipeline is mapped but this stage is not (DEAL-2);
- ``new_pipeline``: an unmapped Salesforce record type: the deal goes to a HubSpot pipeline named
  ``Salesforce - <RecordTypeId>`` (``Salesforce - Standard pipeline`` when the org has one pipeline)
  with the Salesforce stage names (DEAL-3);
- ``unmapped_pipeline``: a Dynamics process with no mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from crm_pipelines.transform.frames import Mirrors, flag, text

STANDARD = "standard"
_DYNAMICS_STEPS = {0: "Qualify", 1: "Develop", 2: "Propose", 3: "Close"}


@dataclass(frozen=True)
class PipelineMapping:
    """One other-CRM pipeline mapped onto one HubSpot pipeline; ``stages``: other stage -> HubSpot stage id."""

    other_pipeline: str
    hubspot_pipeline: str
    stages: Mapping[str, str] = field(default_factory=dict)
    # "salesforce" or "dynamics" (both may call their only pipeline "standard"); None: whichever has it
    crm: str | None = None


@dataclass(frozen=True)
class StageSettings:
    pipelines: tuple[PipelineMapping, ...] = ()
    # DEAL-5: synced deals of unmapped record types go here instead of a new `Salesforce - ...` pipeline
    dedicated_pipeline: str | None = None


def hubspot_stages(mirrors: Mirrors) -> pd.DataFrame:
    """The HubSpot pipelines frame, typed: pipeline_id, pipeline_label, stage_id, stage_label, order, closed/won."""
    p = mirrors.get("hubspot", "pipelines", ["pipeline_id", "pipeline_label", "stage_id", "stage_label",
                                             "display_order", "is_closed", "is_won"])
    return pd.DataFrame({
        "pipeline_id": text(p["pipeline_id"]), "pipeline_label": text(p["pipeline_label"]),
        "stage_id": text(p["stage_id"]), "stage_label": text(p["stage_label"]),
        "order": pd.to_numeric(p["display_order"], errors="coerce").astype("Int64"),
        "is_closed": flag(p["is_closed"]), "is_won": flag(p["is_won"]),
    }).reset_index(drop=True)


def salesforce_stages(mirrors: Mirrors) -> pd.DataFrame:
    """OpportunityStage as stage, label, order, is_closed, is_won."""
    s = mirrors.live("salesforce", "OpportunityStage", ["ApiName", "MasterLabel", "SortOrder", "IsClosed", "IsWon"])
    api = text(s["ApiName"]).fillna(text(s["MasterLabel"]))
    return pd.DataFrame({
        "stage": api, "label": text(s["MasterLabel"]).fillna(api),
        "order": pd.to_numeric(s["SortOrder"], errors="coerce").astype("Int64"),
        "is_closed": flag(s["IsClosed"]), "is_won": flag(s["IsWon"]),
    }).reset_index(drop=True)


def dynamics_stages() -> pd.DataFrame:
    """Dynamics' sales process: four open steps, then won and lost (statecode 1 and 2)."""
    names = [*_DYNAMICS_STEPS.values(), "Won", "Lost"]
    return pd.DataFrame({"stage": names, "label": names, "order": pd.array(range(len(names)), dtype="Int64"),
                         "is_closed": [False] * 4 + [True, True], "is_won": [False] * 4 + [True, False]})


def deal_stage_keys(mirrors: Mirrors) -> pd.DataFrame:
    """Every live Opportunity / Dynamics opportunity as crm, id, pipeline, stage, is_closed, is_won."""
    o = mirrors.live("salesforce", "Opportunity", ["RecordTypeId", "StageName", "IsClosed", "IsWon"])
    sf = pd.DataFrame({
        "crm": "salesforce", "id": text(o["id"]).to_numpy(),
        "pipeline": text(o["RecordTypeId"]).fillna(STANDARD).to_numpy(), "stage": text(o["StageName"]).to_numpy(),
        "is_closed": flag(o["IsClosed"]).to_numpy(), "is_won": flag(o["IsWon"]).to_numpy(),
    })
    d = mirrors.live("dynamics", "opportunities", ["statecode", "salesstage", "stepname"])
    state = pd.to_numeric(d["statecode"], errors="coerce")
    step = text(d["stepname"]).str.replace(r"^\s*\d+\s*-\s*", "", regex=True)
    step = step.fillna(pd.to_numeric(d["salesstage"], errors="coerce").map(_DYNAMICS_STEPS).astype("string"))
    stage = step.mask(state == 1, "Won").mask(state == 2, "Lost")
    dy = pd.DataFrame({
        "crm": "dynamics", "id": text(d["id"]).to_numpy(), "pipeline": STANDARD, "stage": stage.to_numpy(),
        "is_closed": state.isin([1, 2]).to_numpy(), "is_won": (state == 1).to_numpy(),
    })
    out = pd.concat([sf, dy], ignore_index=True)
    for c in ("crm", "id", "pipeline", "stage"):
        out[c] = out[c].astype("string")
    return out


def _mapping_frame(settings: StageSettings) -> pd.DataFrame:
    rows = [(crm, m.other_pipeline, m.hubspot_pipeline, s, h) for m in settings.pipelines
            for crm in ((m.crm,) if m.crm else ("salesforce", "dynamics")) for s, h in m.stages.items()]
    return pd.DataFrame(rows, columns=["crm", "pipeline", "hubspot_pipeline", "stage", "hubspot_stage"],
                        dtype="string")


def map_deal_stages(deals: pd.DataFrame, settings: StageSettings, hubspot: pd.DataFrame,
                    record_type_count: int | None = None) -> pd.DataFrame:
    """Per deal (from ``deal_stage_keys``): ``hubspot_pipeline``, ``hubspot_pipeline_label``, ``hubspot_stage``,
    ``status`` (see module docstring) and ``closed_mismatch`` (DEAL-4: a closed-won/lost deal whose target
    stage is not closed-won/lost alike, or the reverse).

    ``record_type_count``: how many Opportunity record types the org has; with at most one, unmapped deals
    land in ``Salesforce - Standard pipeline`` (DEAL-3).
    """
    maps = _mapping_frame(settings)
    out = deals.merge(maps, on=["crm", "pipeline", "stage"], how="left")
    mapped_pipes = {f"{crm}\x1f{m.other_pipeline}": m.hubspot_pipeline for m in settings.pipelines
                    for crm in ((m.crm,) if m.crm else ("salesforce", "dynamics"))}
    pipe_key = out["crm"] + "\x1f" + out["pipeline"]
    known_pipe = pipe_key.isin(list(mapped_pipes))
    status = np.where(out["hubspot_stage"].notna(), "mapped", np.where(known_pipe, "unmapped_stage", ""))
    new_pipe = (status == "") & (out["crm"] == "salesforce").to_numpy()
    status = np.where(new_pipe, "new_pipeline", np.where(status == "", "unmapped_pipeline", status))
    one_pipeline = record_type_count is not None and record_type_count <= 1
    label = np.where(one_pipeline | (out["pipeline"] == STANDARD).to_numpy(), "Salesforce - Standard pipeline",
                     "Salesforce - " + out["pipeline"].astype(str))
    out["status"] = pd.array(status, dtype="string")
    out["hubspot_pipeline"] = out["hubspot_pipeline"].fillna(pipe_key.map(mapped_pipes).astype("string"))
    hs_label = hubspot.drop_duplicates("pipeline_id").set_index("pipeline_id")["pipeline_label"]
    out["hubspot_pipeline_label"] = out["hubspot_pipeline"].map(hs_label).astype("string")
    if settings.dedicated_pipeline:
        out.loc[new_pipe, "hubspot_pipeline"] = settings.dedicated_pipeline
        out.loc[new_pipe, "hubspot_pipeline_label"] = out.loc[new_pipe, "hubspot_pipeline"].map(hs_label)
    else:
        out.loc[new_pipe, "hubspot_pipeline_label"] = label[new_pipe]
    # in a new pipeline the stages are created with the Salesforce names
    out.loc[new_pipe, "hubspot_stage"] = out.loc[new_pipe, "stage"]
    flags = hubspot[["pipeline_id", "stage_id", "is_closed", "is_won"]].rename(
        columns={"pipeline_id": "hubspot_pipeline", "stage_id": "hubspot_stage", "is_closed": "_hc", "is_won": "_hw"})
    out = out.merge(flags, on=["hubspot_pipeline", "hubspot_stage"], how="left")
    mapped = out["status"] == "mapped"
    out["closed_mismatch"] = mapped & ((out["_hc"].fillna(False).astype(bool) != out["is_closed"])
                                       | (out["_hw"].fillna(False).astype(bool) != out["is_won"]))
    return out.drop(columns=["_hc", "_hw"])


def auto_map_stages(other: pd.DataFrame, hubspot: pd.DataFrame, other_pipeline: str, hubspot_pipeline: str,
                    existing: Mapping[str, str] | None = None, min_score: float = 60.0) -> pd.DataFrame:
    """DEAL-2 "auto-map": a proposal pairing each unmapped stage of ``other`` (``salesforce_stages`` /
    ``dynamics_stages``) with the most similar HubSpot stage of ``hubspot_pipeline``, for a user to review.

    Closed stages only pair with closed stages of the same outcome (DEAL-4), open with open. Similarity is
    rapidfuzz's ``token_set_ratio`` on case-folded labels; below ``min_score`` the proposal is left empty.
    Columns: other_pipeline, stage, label, hubspot_pipeline, hubspot_stage, hubspot_label, score, source
    (``settings`` for pairs already mapped, ``auto`` for proposals, ``none`` when nothing fits).
    """
    existing = dict(existing or {})
    target = hubspot[hubspot["pipeline_id"] == hubspot_pipeline]
    rows = []
    for stage, label, closed, won in zip(other["stage"], other["label"], other["is_closed"], other["is_won"],
                                         strict=True):
        # one row per stage of a pipeline's catalog (tens), not per record
        if stage in existing:
            hs = target[target["stage_id"] == existing[stage]]
            rows.append((stage, label, existing[stage], hs["stage_label"].iloc[0] if len(hs) else None, 100.0,
                         "settings"))
            continue
        pool = target[(target["is_closed"] == bool(closed)) & (target["is_won"] == bool(won))]
        best = process.extractOne(str(label).casefold(), [str(x).casefold() for x in pool["stage_label"]],
                                  scorer=fuzz.token_set_ratio) if len(pool) else None
        if closed and len(pool) == 1 and (best is None or best[1] < min_score):
            best = (None, 100.0, 0)  # the only closed-won (closed-lost) stage: the outcome decides (DEAL-4)
        if best is None or best[1] < min_score:
            rows.append((stage, label, None, None, best[1] if best else 0.0, "none"))
        else:
            hs = pool.iloc[best[2]]
            rows.append((stage, label, hs["stage_id"], hs["stage_label"], float(best[1]), "auto"))
    out = pd.DataFrame(rows, columns=["stage", "label", "hubspot_stage", "hubspot_label", "score", "source"])
    out.insert(0, "other_pipeline", other_pipeline)
    out.insert(3, "hubspot_pipeline", hubspot_pipeline)
    return out


def proposal_as_mapping(proposal: pd.DataFrame) -> dict:
    """An ``auto_map_stages`` proposal in the settings' ``StageMapping`` shape (``other_pipeline``,
    ``hubspot_pipeline``, ``stages``), for a user to review and paste into the YAML; empty proposals are left out
    so they stay visibly unmapped (DEAL-2)."""
    chosen = proposal.dropna(subset=["hubspot_stage"])
    return {
        "other_pipeline": str(proposal["other_pipeline"].iloc[0]) if len(proposal) else "",
        "hubspot_pipeline": str(proposal["hubspot_pipeline"].iloc[0]) if len(proposal) else "",
        "stages": dict(zip(chosen["stage"].astype(str), chosen["hubspot_stage"].astype(str), strict=True)),
    }


def unmapped_stages(mapped: pd.DataFrame) -> pd.DataFrame:
    """Per (crm, pipeline, stage) not mapped: how many deals sit there (the unmapped-stages check)."""
    bad = mapped[mapped["status"].isin(["unmapped_stage", "unmapped_pipeline"])]
    return bad.groupby(["crm", "pipeline", "stage", "status"], dropna=False).size().rename("deals").reset_index()

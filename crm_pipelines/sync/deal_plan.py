"""Deals to create per target CRM, the HubSpot pipelines they need, and the deals reported instead (DEAL-1..5).

From the ``unified`` deal identities (linked only by the sync's own links: deals are never deduplicated,
DEAL-5) and the stage mapping the transform made for every Opportunity / Dynamics opportunity
(``deal_stages``):

- DEAL-2: only deals in mapped stages sync; a deal whose stage (or pipeline) has no mapping is not created
  and is reported per record as a finding, never guessed. A HubSpot deal goes to Salesforce or Dynamics
  through the same mapping read backwards (the first mapped stage of the other CRM's pipeline that pairs
  with its HubSpot pipeline and stage, in the settings' order).
- DEAL-3: an Opportunity of a record type without a mapping lands in the HubSpot pipeline
  ``Salesforce - <RecordTypeId>`` (``Salesforce - Standard pipeline`` when the org has one), with the
  Salesforce stage names; the plan creates that pipeline (or the stages it lacks) before its deals.
- DEAL-4: the new pipeline's stages are closed-won / closed-lost as the Salesforce stages are; a closed deal
  whose mapped HubSpot stage is not closed alike (or an open one mapped to a closed stage) is reported, not
  created in a state that reads differently in the two apps.
- DEAL-5: with ``deals.dedicated_pipeline`` set, those deals go to that HubSpot pipeline instead (the stages
  it lacks are added).
- DEL-4: a deal whose counterpart was deleted keeps its link, so it is never created again; a HubSpot deal
  deleted is not created in the other CRM of a connection it never reached.
- CON-1 / CON-8: the connection's deal switch, direction and filters (on HubSpot property names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction, Filter
from crm_pipelines.sync.contact_creates import passes
from crm_pipelines.sync.plan import CREATE_COLUMNS, FINDING_COLUMNS, LEFT_OUT_COLUMNS, concat, frame

DEAL_TYPE = {"hubspot": "deal", "salesforce": "Opportunity", "dynamics": "opportunity"}


@dataclass(frozen=True)
class StagePairs:
    """One other-CRM pipeline mapped onto a HubSpot pipeline: other stage -> HubSpot stage id (DEAL-2)."""

    other_pipeline: str
    hubspot_pipeline: str
    stages: Mapping[str, str]


@dataclass(frozen=True)
class DealCreateSettings:
    enabled: bool = True
    direction: Direction = Direction.TWO_WAY
    pipelines: tuple[StagePairs, ...] = ()
    filters: tuple[Filter, ...] = ()  # CON-8, on HubSpot property names


def _left_out(rows: pd.DataFrame, target: str, reason: str | np.ndarray) -> pd.DataFrame:
    return frame(LEFT_OUT_COLUMNS, rows.assign(object="deal", target_crm=target, reason=reason))


def _findings(rows: pd.DataFrame, crm: str, target: str, reason: str | np.ndarray) -> pd.DataFrame:
    return frame(FINDING_COLUMNS, rows.assign(object="deal", crm=crm, id=rows["source_id"], target_crm=target,
                                              reason=reason))


def reverse_stages(rules: DealCreateSettings) -> pd.DataFrame:
    """(``hubspot_pipeline``, ``hubspot_stage``) -> (``other_pipeline``, ``other_stage``), the first pair in the
    settings' order where several of the other CRM's stages map onto one HubSpot stage."""
    rows = [(m.hubspot_pipeline, h, m.other_pipeline, s) for m in rules.pipelines for s, h in m.stages.items()]
    out = pd.DataFrame(rows, columns=["hubspot_pipeline", "hubspot_stage", "other_pipeline", "other_stage"],
                       dtype=object)  # fmt: skip
    return out.drop_duplicates(["hubspot_pipeline", "hubspot_stage"], keep="first")


def _filtered(rows: pd.DataFrame, values: pd.DataFrame | None, filters: Sequence[Filter]) -> np.ndarray:
    """CON-8: which rows' records (``source_id``) meet every filter, from their mapped values."""
    if not filters:
        return np.ones(len(rows), dtype=bool)
    values = values if values is not None else pd.DataFrame({"id": pd.Series(dtype=object)})
    view = values.set_index(values["id"].astype(str)).reindex(rows["source_id"].astype(str))
    return passes(view.reset_index(drop=True), filters)


def deal_creates(deals: pd.DataFrame, stages: pd.DataFrame, hubspot_deals: pd.DataFrame,
                 connections: dict[str, DealCreateSettings], values: Mapping[str, pd.DataFrame] | None = None,
                 ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """``deals``: ``unified`` deal identities; ``stages``: ``deal_stages`` (DEAL-2..5 per Opportunity and
    Dynamics opportunity); ``hubspot_deals``: HubSpot deals' ``deal_id``, ``pipeline``, ``dealstage``
    (``deal_facts``); ``values``: CRM -> mapped deal values (``id`` + HubSpot properties), read by filters.
    Returns target CRM -> deals to create (``CREATE_COLUMNS``), those left out, and the findings."""
    values = values or {}
    creates: dict[str, pd.DataFrame] = {}
    skipped, findings = [], []

    # HubSpot -> each other CRM, through the mapping read backwards
    hs = deals[deals["hubspot_id"].notna()]
    facts = hubspot_deals[["deal_id", "pipeline", "dealstage"]].rename(columns={"deal_id": "hubspot_id"})
    hs = hs.merge(facts.astype({"hubspot_id": object}), on="hubspot_id", how="left")
    for crm, rules in connections.items():
        cand = hs[hs[f"{crm}_id"].isna()].assign(source_crm="hubspot", source_id=lambda f: f["hubspot_id"])
        if not rules.enabled or rules.direction == Direction.OTHER_TO_HUBSPOT:
            creates[crm] = frame(CREATE_COLUMNS)
            continue
        # DEL-4: a deal identity keeps its link when the HubSpot deal is deleted (deals are linked only by the
        # sync's writes); a deleted deal is not live in ``deal_facts`` and is never created elsewhere
        gone = ~cand["hubspot_id"].isin(facts["hubspot_id"]).to_numpy(dtype=bool)
        skipped.append(_left_out(cand[gone], crm, "DEL-4 deleted in hubspot"))
        cand = cand[~gone]
        back = reverse_stages(rules).rename(columns={"hubspot_pipeline": "pipeline", "hubspot_stage": "dealstage"})
        cand = cand.merge(back, on=["pipeline", "dealstage"], how="left")
        mapped = cand["other_stage"].notna().to_numpy()
        reason = ("DEAL-2 HubSpot pipeline " + cand["pipeline"].astype(str) + " stage "
                  + cand["dealstage"].astype(str) + f" has no stage mapped in {crm}").to_numpy()
        skipped.append(_left_out(cand[~mapped], crm, reason[~mapped]))
        findings.append(_findings(cand[~mapped], "hubspot", crm, reason[~mapped]))
        cand = cand[mapped]
        ok = _filtered(cand, values.get("hubspot"), rules.filters)
        skipped.append(_left_out(cand[~ok], crm, "CON-8 filtered out"))
        made = cand[ok]
        made = made.assign(object="deal", object_type=DEAL_TYPE[crm], pipeline=made["other_pipeline"],
                           stage=made["other_stage"], detail="")
        creates[crm] = frame(CREATE_COLUMNS, made)

    # each other CRM -> HubSpot, by the transform's stage mapping
    parts = []
    for crm, rules in connections.items():
        src = deals[deals["hubspot_id"].isna() & deals[f"{crm}_id"].notna()]
        src = src.assign(source_crm=crm, source_id=src[f"{crm}_id"])
        if not rules.enabled or rules.direction == Direction.HUBSPOT_TO_OTHER or src.empty:
            continue
        mine = stages[stages["crm"] == crm].drop(columns="crm").rename(columns={"id": "source_id"})
        src = src.merge(mine.astype({"source_id": object}), on="source_id", how="left")
        status = src["status"].astype(object).fillna("no_stage").to_numpy()
        mismatch = src["closed_mismatch"].astype(object).fillna(False).astype(bool).to_numpy()
        where = "pipeline " + src["pipeline"].astype(str) + " stage " + src["stage"].astype(str)
        reason = np.select(
            [status == "unmapped_stage", status == "unmapped_pipeline", status == "no_stage",
             (status == "mapped") & mismatch],
            [("DEAL-2 unmapped stage: " + where).to_numpy(), ("DEAL-2 unmapped pipeline: " + where).to_numpy(),
             "DEAL-2 no stage known", ("DEAL-4 closed state differs from the mapped HubSpot stage's: "
                                       + where).to_numpy()], "")  # fmt: skip
        bad = reason != ""
        skipped.append(_left_out(src[bad], "hubspot", reason[bad]))
        findings.append(_findings(src[bad], crm, "hubspot", reason[bad]))
        src = src[~bad]
        ok = _filtered(src, values.get(crm), rules.filters)
        skipped.append(_left_out(src[~ok], "hubspot", "CON-8 filtered out"))
        parts.append(src[ok])
    if parts:
        made = pd.concat(parts, ignore_index=True)
        label = made["hubspot_pipeline_label"].astype(object)
        made = made.assign(object="deal", object_type="deal", pipeline=made["hubspot_pipeline"].astype(object)
                           .where(made["hubspot_pipeline"].notna(), label), stage=made["hubspot_stage"],
                           detail=np.where(made["status"] == "new_pipeline", "DEAL-3 new pipeline", ""))
        creates["hubspot"] = frame([*CREATE_COLUMNS, "status", "is_closed", "is_won", "hubspot_pipeline_label"], made)
    else:
        creates["hubspot"] = frame(CREATE_COLUMNS)
    return creates, concat(LEFT_OUT_COLUMNS, skipped), concat(FINDING_COLUMNS, findings)


def pipeline_creates(deal_creates_to_hubspot: pd.DataFrame, hubspot_pipelines: pd.DataFrame) -> pd.DataFrame:
    """DEAL-3/DEAL-5/DEAL-4: the HubSpot pipelines (or stages of a pipeline) the deals planned into pipelines
    for unmapped record types need and HubSpot lacks. ``hubspot_pipelines``: ``pipeline_id``,
    ``pipeline_label``, ``stage_id``, ``stage_label``. One row per pipeline to create (``object``
    ``pipeline``, its stages in ``detail``) or per stage to add to an existing one (``pipeline_stage``)."""
    new = deal_creates_to_hubspot
    if "status" not in new or new.empty:
        return frame(CREATE_COLUMNS)
    new = new[new["status"] == "new_pipeline"]
    stages = new.groupby(["pipeline", "stage"], sort=True, dropna=False).agg(
        is_closed=("is_closed", "max"), is_won=("is_won", "max")).reset_index()
    known = hubspot_pipelines.astype(object)
    by_id = known.assign(pipeline=known["pipeline_id"])
    by_label = known.assign(pipeline=known["pipeline_label"])
    existing = pd.concat([by_id, by_label], ignore_index=True).drop_duplicates(["pipeline", "stage_id", "stage_label"])
    has_pipeline = stages["pipeline"].isin(existing["pipeline"]).to_numpy()
    held = existing.melt(id_vars=["pipeline"], value_vars=["stage_id", "stage_label"], value_name="stage")
    has_stage = stages.merge(held[["pipeline", "stage"]].drop_duplicates(), on=["pipeline", "stage"], how="left",
                             indicator=True)["_merge"].eq("both").to_numpy()  # fmt: skip
    flag = np.where(stages["is_won"].fillna(False).astype(bool), " (closed won)",
                    np.where(stages["is_closed"].fillna(False).astype(bool), " (closed lost)", ""))
    stages = stages.assign(label=stages["stage"].astype(str) + flag)
    add = stages[has_pipeline & ~has_stage]
    added = add.assign(object="pipeline_stage", identity_id=None, source_crm="salesforce",
                       source_id=add["pipeline"].astype(str) + ":" + add["stage"].astype(str),
                       object_type="pipeline stage", detail=add["label"])
    fresh = stages[~has_pipeline].groupby("pipeline", sort=True)["label"].agg(" | ".join).reset_index()
    created = fresh.assign(object="pipeline", identity_id=None, source_crm="salesforce", source_id=fresh["pipeline"],
                           object_type="deal pipeline", detail=fresh["label"], stage=None)
    return concat(CREATE_COLUMNS, [created, added])


STAGE_FIELD = "pipeline_stage"  # a deal's HubSpot pipeline and stage, merged as one value: "<pipeline>:<stage>"


def stage_values(stages: pd.DataFrame, hubspot_deals: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """CRM -> ``id`` + ``STAGE_FIELD`` in HubSpot's terms, for merging a linked deal's stage like a field
    (DEAL-2): HubSpot's own, and the other CRMs' mapped ones (a deal in an unmapped stage has none)."""
    out = {"hubspot": pd.DataFrame({"id": hubspot_deals["deal_id"].astype(object).to_numpy(),
                                    STAGE_FIELD: (hubspot_deals["pipeline"].astype(str) + ":"
                                                  + hubspot_deals["dealstage"].astype(str)).to_numpy()})}
    mapped = stages[stages["status"] == "mapped"]
    for crm in ("salesforce", "dynamics"):
        m = mapped[mapped["crm"] == crm]
        out[crm] = pd.DataFrame({"id": m["id"].astype(object).to_numpy(),
                                 STAGE_FIELD: (m["hubspot_pipeline"].astype(str) + ":"
                                               + m["hubspot_stage"].astype(str)).to_numpy()})
    return out


def drop_unmapped_stages(merged: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The merges without the stage rows of deals whose stage one side cannot state in HubSpot's terms (an
    unmapped stage): a stage is never blank, so a missing one is unknown, not cleared (DEAL-2: not guessed)."""
    out = {}
    for crm, m in merged.items():
        unknown = (m["field"] == STAGE_FIELD) & (m["other_value"].isna() | m["hubspot_value"].isna())
        out[crm] = m[~unknown.to_numpy(dtype=bool)].reset_index(drop=True)
    return out


def stage_updates(updates: pd.DataFrame, crm: str, rules: DealCreateSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A linked deal's stage update to ``crm`` (``STAGE_FIELD`` rows of its field updates) in the stage names
    ``crm`` takes, through the mapping read backwards (DEAL-2); rows without one become findings. The other
    rows pass unchanged; ``old`` stays in HubSpot's terms (the other record's stage as mapped)."""
    is_stage = (updates["field"] == STAGE_FIELD).to_numpy()
    if not is_stage.any():
        return updates, frame(FINDING_COLUMNS)
    rows = updates[is_stage]
    back = reverse_stages(rules)
    key = back["hubspot_pipeline"].astype(str) + ":" + back["hubspot_stage"].astype(str)
    named = pd.Series((back["other_pipeline"].astype(str) + ":" + back["other_stage"].astype(str)).to_numpy(),
                      index=key.to_numpy())
    new = rows["new"].astype(str).map(named)
    found = rows[new.isna().to_numpy()]
    findings = frame(FINDING_COLUMNS, found.assign(object="deal", crm="hubspot", id=found["hubspot_id"], target_crm=crm,
                                                   reason="DEAL-2 HubSpot " + found["new"].astype(str)
                                                   + f" has no stage mapped in {crm}"))  # fmt: skip
    kept = rows[new.notna().to_numpy()].assign(new=new.dropna().to_numpy())
    return pd.concat([updates[~is_stage], kept], ignore_index=True), findings

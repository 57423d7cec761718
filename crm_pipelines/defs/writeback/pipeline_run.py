"""DEAL-3 before the deals: the HubSpot pipelines and stages the stored plan's deals need, created where HubSpot
lacks them (``sync/pipeline_writes.py``), found again by their labels, so no outbox is needed: each run lists
HubSpot's pipelines first (one call) and creates only what is missing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from crm_pipelines.crm.errors import BudgetExhausted, WriteInDoubt
from crm_pipelines.defs.writeback.stored_plan import PIPELINE_INPUTS
from crm_pipelines.state import mirror, plan_store
from crm_pipelines.sync.pipeline_writes import pipeline_work, stage_ids


async def ensure_pipelines(engine: Engine, client: Any) -> tuple[dict[tuple[str, str], tuple[str, str]], int,
                                                                 list[dict[str, Any]]]:
    """Every HubSpot pipeline's stage ids by label (for the deals planned into new pipelines), the pipelines and
    stages created, and why it stopped early (a create whose answer was lost, the 24 h budget spent): the
    deals into those pipelines then wait for a later run."""
    stored = plan_store.read(engine, parts=[PIPELINE_INPUTS]).get(("hubspot", PIPELINE_INPUTS))
    if stored is None or stored.empty or not stored["status"].eq("new_pipeline").any():
        return {}, 0, []
    deals = stored[stored["status"] == "new_pipeline"]
    try:
        existing = await client.pipelines("deals")
    except BudgetExhausted as spent:  # the calls left go to the records
        return {}, 0, [_stopped("BUDGET", spent)]
    work = pipeline_work(deals, existing, _stage_probabilities(engine))
    created, stopped = 0, []
    try:
        for label, stages in work.create.items():
            existing.append(await client.create_pipeline("deals", label, stages))
            created += 1
        by_id = {str(p["id"]): p for p in existing}
        for pipeline_id, stages in work.add.items():
            for stage in stages:
                by_id[pipeline_id].setdefault("stages", []).append(
                    await client.create_stage("deals", pipeline_id, stage))
                created += 1
    except (WriteInDoubt, BudgetExhausted) as stop:  # the next run lists them again
        stopped.append(_stopped("IN_DOUBT" if isinstance(stop, WriteInDoubt) else "BUDGET", stop))
    return stage_ids(existing), created, stopped


def _stopped(code: str, error: Exception) -> dict[str, Any]:
    return {"object": "pipeline", "operation": "create", "ref": "", "code": code, "message": str(error)}


def _stage_probabilities(engine: Engine) -> dict[str, float]:
    """Salesforce stage name -> its default probability (0..1), for the open stages DEAL-3 creates."""
    stages = mirror.read_records(engine, "salesforce", "OpportunityStage",
                                 columns=["ApiName", "MasterLabel", "DefaultProbability"])
    if stages.empty or "DefaultProbability" not in stages:
        return {}
    live = stages[~stages["deleted"].astype(bool) & stages["DefaultProbability"].notna()]
    names = live["ApiName"] if "ApiName" in live else live["MasterLabel"]
    return {str(n): float(p) / 100 for n, p in zip(names, live["DefaultProbability"], strict=True)}

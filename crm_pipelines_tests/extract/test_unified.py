"""The `unified` assets through a real Dagster run on the extracted mirrors: results stored in the state
database, asset checks evaluated with counts and samples, rollups equal to what the CRM's own data says."""

from __future__ import annotations

import dagster as dg
import httpx

from crm_pipelines.defs.unified.assets import DUPLICATE_EMAILS, UNMAPPED_STAGES, build_unified_assets
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.state.unified import read as read_frame
from crm_pipelines_tests.extract.test_extract import backfill
from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def _won_stages(api: httpx.Client) -> set[tuple[str, str]]:
    pipelines = api.get("/crm/v3/pipelines/deals").json()["results"]
    return {
        (p["id"], s["id"])
        for p in pipelines
        for s in p["stages"]
        if s["metadata"].get("isClosed") == "true" and float(s["metadata"]["probability"]) == 1.0
    }


def test_unified_run_stores_identities_checks_and_rollups(
    hubspot_sandbox: RunningSandbox, extract_defs, instance: dg.DagsterInstance, state_url: str
) -> None:
    """CON-2 identities, CON-11 findings as a check, and the SPEC rollup table for a contact with deals,
    recomputed here straight from the HubSpot API (num_associated_deals, total_revenue)."""
    settings, assets, resources = extract_defs
    backfill(instance, settings, assets, resources)
    result = dg.materialize([build_unified_assets()], instance=instance, resources=resources)
    assert result.success

    engine = create_state_engine(state_url)
    identities = read_frame(engine, "contact_identities")
    members = read_frame(engine, "contact_members")
    assert 0 < len(identities) <= len(members)

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {DUPLICATE_EMAILS, UNMAPPED_STAGES} <= set(checks)
    duplicates = checks[DUPLICATE_EMAILS]
    findings = len(read_frame(engine, "contact_findings"))
    # HubSpot itself keeps emails unique, so with only HubSpot connected nothing is ambiguous
    assert duplicates.metadata["count"].value == findings == 0 and duplicates.passed
    unmapped = checks[UNMAPPED_STAGES]
    assert unmapped.metadata["count"].value == 0 and unmapped.passed  # no Salesforce/Dynamics deals here

    rollups = read_frame(engine, "contact_rollups").set_index("contact_id")
    contact_id = rollups["num_associated_deals"].astype(int).idxmax()
    with hubspot_sandbox.api() as api:
        won = _won_stages(api)
        linked = api.get(f"/crm/v4/objects/contacts/{contact_id}/associations/deals").json()["results"]
        deal_ids = sorted({str(r["toObjectId"]) for r in linked})
        deals = api.post(
            "/crm/v3/objects/deals/batch/read",
            json={"inputs": [{"id": i} for i in deal_ids], "properties": ["amount", "pipeline", "dealstage"]},
        ).json()["results"]
    revenue = sum(
        float(d["properties"]["amount"] or 0)
        for d in deals
        if (d["properties"]["pipeline"], d["properties"]["dealstage"]) in won
    )
    assert int(rollups.loc[contact_id, "num_associated_deals"]) == len(deal_ids)
    assert float(rollups.loc[contact_id, "total_revenue"] or 0) == revenue


def test_auto_map_proposal_is_written_for_review() -> None:
    """DEAL-2 auto-map: stages left unmapped get the most similar HubSpot stage of the same kind (closed won
    with closed won, DEAL-4); configured pairs are kept; the proposal comes out as settings YAML."""
    import pandas as pd
    import yaml

    from crm_pipelines.defs.unified.assets import proposal_yaml, stage_proposals
    from crm_pipelines.settings.model import Settings
    from crm_pipelines.transform.frames import Mirrors

    base = {"modified_at": pd.Timestamp("2026-01-01", tz="UTC"), "deleted": False}
    sf = pd.DataFrame(
        [
            {
                **base,
                "id": "1",
                "ApiName": "Qualification",
                "MasterLabel": "Qualification",
                "SortOrder": 1,
                "IsClosed": False,
                "IsWon": False,
            },
            {
                **base,
                "id": "2",
                "ApiName": "Closed Won",
                "MasterLabel": "Closed Won",
                "SortOrder": 2,
                "IsClosed": True,
                "IsWon": True,
            },
            {
                **base,
                "id": "3",
                "ApiName": "Closed Lost",
                "MasterLabel": "Closed Lost",
                "SortOrder": 3,
                "IsClosed": True,
                "IsWon": False,
            },
        ]
    )
    hs = pd.DataFrame(
        [
            {
                **base,
                "id": f"default:{s}",
                "pipeline_id": "default",
                "pipeline_label": "Sales",
                "stage_id": s,
                "stage_label": label,
                "display_order": i,
                "is_closed": closed,
                "is_won": won,
            }
            for i, (s, label, closed, won) in enumerate(
                [
                    ("qualifiedtobuy", "Qualified To Buy", "false", False),
                    ("closedwon", "Closed Won", "true", True),
                    ("closedlost", "Closed Lost", "true", False),
                ]
            )
        ]
    )
    mirrors = Mirrors({("salesforce", "OpportunityStage"): sf, ("hubspot", "pipelines"): hs})
    settings = Settings.model_validate(
        {
            "sync": {
                "salesforce": {
                    "deals": {
                        "pipelines": [
                            {
                                "other_pipeline": "standard",
                                "hubspot_pipeline": "default",
                                "auto_map": True,
                                "stages": {"Closed Won": "closedwon"},
                            }
                        ]
                    }
                }
            }
        }
    )
    proposal = stage_proposals(mirrors, settings).set_index("stage")
    assert proposal.loc["Closed Won", "source"] == "settings"
    assert proposal.loc["Closed Lost", "hubspot_stage"] == "closedlost"  # lost pairs with lost, never won
    text = proposal_yaml(stage_proposals(mirrors, settings))
    mapping = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])["sync.salesforce.deals.pipelines"][0]
    assert mapping["stages"]["Closed Lost"] == "closedlost" and mapping["stages"]["Closed Won"] == "closedwon"

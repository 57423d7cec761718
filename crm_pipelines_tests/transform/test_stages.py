"""Pipelines and stages: DEAL-2, DEAL-3, DEAL-4; deal identities DEAL-5."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform import checks
from crm_pipelines.transform.deals import deal_identities
from crm_pipelines.transform.stages import (
    PipelineMapping,
    StageSettings,
    auto_map_stages,
    deal_stage_keys,
    dynamics_stages,
    hubspot_stages,
    map_deal_stages,
    proposal_as_mapping,
    salesforce_stages,
)
from crm_pipelines_tests.transform.conftest import mirrors

HS = [
    {"id": "1", "pipeline_id": "default", "pipeline_label": "Sales Pipeline", "stage_id": "qualifiedtobuy",
     "stage_label": "Qualified To Buy", "display_order": "0", "is_closed": False, "is_won": False},
    {"id": "2", "pipeline_id": "default", "pipeline_label": "Sales Pipeline", "stage_id": "contractsent",
     "stage_label": "Contract Sent", "display_order": "1", "is_closed": False, "is_won": False},
    {"id": "3", "pipeline_id": "default", "pipeline_label": "Sales Pipeline", "stage_id": "closedwon",
     "stage_label": "Closed Won", "display_order": "2", "is_closed": True, "is_won": True},
    {"id": "4", "pipeline_id": "default", "pipeline_label": "Sales Pipeline", "stage_id": "closedlost",
     "stage_label": "Closed Lost", "display_order": "3", "is_closed": True, "is_won": False},
]
SF_STAGES = [
    {"id": "s1", "ApiName": "Qualification", "MasterLabel": "Qualification", "SortOrder": 1, "IsClosed": False,
     "IsWon": False},
    {"id": "s2", "ApiName": "Needs Analysis", "MasterLabel": "Needs Analysis", "SortOrder": 2, "IsClosed": False,
     "IsWon": False},
    {"id": "s3", "ApiName": "Closed Won", "MasterLabel": "Closed Won", "SortOrder": 3, "IsClosed": True, "IsWon": True},
    {"id": "s4", "ApiName": "Lost Deal", "MasterLabel": "Lost Deal", "SortOrder": 4, "IsClosed": True, "IsWon": False},
]


def _opp(id_, rt, stage, closed=False, won=False):
    return {"id": id_, "RecordTypeId": rt, "StageName": stage, "IsClosed": closed, "IsWon": won}


def _setup():
    m = mirrors(hubspot__pipelines=HS, salesforce__OpportunityStage=SF_STAGES, salesforce__Opportunity=[
        _opp("o1", "012A", "Qualification"), _opp("o2", "012A", "Needs Analysis"),
        _opp("o3", "012A", "Closed Won", True, True), _opp("o4", "012B", "Qualification"),
    ])
    settings = StageSettings((PipelineMapping("012A", "default", {"Qualification": "qualifiedtobuy",
                                                                  "Closed Won": "closedwon"}),))
    return m, settings


def test_deal2_mapped_and_unmapped_stages_are_reported_not_guessed():
    m, settings = _setup()
    out = map_deal_stages(deal_stage_keys(m), settings, hubspot_stages(m), record_type_count=2).set_index("id")
    assert out.loc["o1", ["status", "hubspot_pipeline", "hubspot_stage"]].tolist() == [
        "mapped", "default", "qualifiedtobuy"]
    assert out.loc["o2", "status"] == "unmapped_stage" and pd.isna(out.loc["o2", "hubspot_stage"])
    check = checks.unmapped_stages(out.reset_index())
    assert not check.passed and check.count == 1 and check.sample[0]["stage"] == "Needs Analysis"


def test_deal3_unmapped_record_type_lands_in_salesforce_named_pipeline():
    m, settings = _setup()
    out = map_deal_stages(deal_stage_keys(m), settings, hubspot_stages(m), record_type_count=2).set_index("id")
    assert out.loc["o4", ["status", "hubspot_pipeline_label", "hubspot_stage"]].tolist() == [
        "new_pipeline", "Salesforce - 012B", "Qualification"]
    one = map_deal_stages(deal_stage_keys(m), StageSettings(), hubspot_stages(m), record_type_count=1)
    assert set(one["hubspot_pipeline_label"]) == {"Salesforce - Standard pipeline"}


def test_deal5_dedicated_pipeline_takes_unmapped_record_types():
    m, _ = _setup()
    out = map_deal_stages(deal_stage_keys(m), StageSettings(dedicated_pipeline="default"), hubspot_stages(m), 2)
    assert set(out["hubspot_pipeline"]) == {"default"}


def test_deal4_closed_won_recognised_and_mismatch_flagged():
    m, _ = _setup()
    wrong = StageSettings((PipelineMapping("012A", "default", {"Closed Won": "contractsent"}),))
    out = map_deal_stages(deal_stage_keys(m), wrong, hubspot_stages(m), 2).set_index("id")
    assert out.loc["o3", "closed_mismatch"]
    m2, right = _setup()
    ok = map_deal_stages(deal_stage_keys(m2), right, hubspot_stages(m2), 2).set_index("id")
    assert not ok.loc["o3", "closed_mismatch"] and ok.loc["o3", "is_won"]


def test_deal2_auto_map_proposes_by_text_similarity_and_outcome():
    m, _ = _setup()
    p = auto_map_stages(salesforce_stages(m), hubspot_stages(m), "012A", "default",
                        existing={"Qualification": "qualifiedtobuy"}).set_index("stage")
    assert p.loc["Qualification", ["hubspot_stage", "source"]].tolist() == ["qualifiedtobuy", "settings"]
    assert p.loc["Closed Won", ["hubspot_stage", "source"]].tolist() == ["closedwon", "auto"]
    # DEAL-4: the only closed-lost stage pairs with closed-lost although the names differ
    assert p.loc["Lost Deal", "hubspot_stage"] == "closedlost"
    # an open stage with no similar name is left for the user
    assert p.loc["Needs Analysis", "source"] == "none" and pd.isna(p.loc["Needs Analysis", "hubspot_stage"])


def test_deal2_dynamics_stages_from_statecode_and_step():
    m = mirrors(dynamics__opportunities=[
        {"id": "a", "statecode": 0, "salesstage": 1, "stepname": "2-Develop"},
        {"id": "b", "statecode": 1, "salesstage": 3, "stepname": "4-Close"},
        {"id": "c", "statecode": 2, "salesstage": 0, "stepname": None},
        {"id": "d", "statecode": 0, "salesstage": 2, "stepname": None}])
    keys = deal_stage_keys(m).set_index("id")
    assert keys["stage"].tolist() == ["Develop", "Won", "Lost", "Propose"]
    assert keys.loc["b", "is_won"] and keys.loc["c", "is_closed"] and not keys.loc["c", "is_won"]
    assert list(dynamics_stages()["stage"]) == ["Qualify", "Develop", "Propose", "Close", "Won", "Lost"]


def test_deal5_deals_are_linked_by_link_only_never_deduplicated():
    m = mirrors(hubspot__deals=[{"id": "h1", "dealname": "Same"}, {"id": "h2", "dealname": "Same"}],
                salesforce__Opportunity=[{"id": "o1", "Name": "Same"}, {"id": "o2", "Name": "Same"}])
    links = pd.DataFrame([{"kind": "deal", "hubspot_id": "h1", "salesforce_id": "o1"}])
    d = deal_identities(m, links)
    assert len(d) == 3
    assert d.set_index("identity_id").loc["hubspot:h1", "salesforce_id"] == "o1"
    assert {"hubspot:h2", "salesforce:o2"} <= set(d["identity_id"])


def test_deal2_auto_map_proposal_in_settings_shape_leaves_unmatched_out():
    m, _ = _setup()
    p = auto_map_stages(salesforce_stages(m), hubspot_stages(m), "012A", "default")
    mapping = proposal_as_mapping(p)
    assert mapping["other_pipeline"] == "012A" and mapping["hubspot_pipeline"] == "default"
    assert mapping["stages"]["Closed Won"] == "closedwon" and "Needs Analysis" not in mapping["stages"]


def test_deal2_dynamics_mapping_is_keyed_by_crm():
    """A Dynamics "standard" process and a Salesforce org without record types are different pipelines."""
    m = mirrors(hubspot__pipelines=HS, salesforce__Opportunity=[_opp("o1", None, "Qualification")],
                dynamics__opportunities=[{"id": "d1", "statecode": 1, "salesstage": 3, "stepname": "4-Close"}])
    settings = StageSettings((PipelineMapping("standard", "default", {"Won": "closedwon"}, crm="dynamics"),))
    out = map_deal_stages(deal_stage_keys(m), settings, hubspot_stages(m), record_type_count=0).set_index("id")
    assert out.loc["d1", ["status", "hubspot_stage"]].tolist() == ["mapped", "closedwon"]
    assert out.loc["o1", ["status", "hubspot_pipeline_label"]].tolist() == ["new_pipeline",
                                                                             "Salesforce - Standard pipeline"]

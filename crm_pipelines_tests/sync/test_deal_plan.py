"""Which deals a plan creates in which CRM, in which pipeline and stage, the pipelines it creates for them,
and the deals it reports instead (``sync/deal_plan.py``); the lifecycle a won deal gives its contacts
(``sync/lifecycle_plan.py``): DEAL-2, DEAL-3, DEAL-4, DEAL-5, DEAL-7."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import Filter
from crm_pipelines.sync.deal_plan import (
    STAGE_FIELD,
    DealCreateSettings,
    StagePairs,
    deal_creates,
    drop_unmapped_stages,
    pipeline_creates,
    stage_updates,
    stage_values,
)
from crm_pipelines.sync.field_inputs import merge_inputs
from crm_pipelines.sync.field_plan import field_updates
from crm_pipelines.sync.lifecycle_plan import contact_lifecycle_updates, won_deal_contacts
from crm_pipelines.sync.merge import merge_fields
from crm_pipelines.transform.stages import PipelineMapping, StageSettings, map_deal_stages

HUBSPOT_STAGES = pd.DataFrame([
    ("default", "Sales Pipeline", "appointmentscheduled", "Appointment", False, False),
    ("default", "Sales Pipeline", "closedwon", "Closed won", True, True),
    ("default", "Sales Pipeline", "closedlost", "Closed lost", True, False),
    ("synced", "From Salesforce", "Prospecting", "Prospecting", False, False),
], columns=["pipeline_id", "pipeline_label", "stage_id", "stage_label", "is_closed", "is_won"])
# every Opportunity / Dynamics opportunity: crm, id, pipeline (record type), stage, closed, won
KEYS = pd.DataFrame([
    ("salesforce", "006A", "standard", "Prospecting", False, False),   # mapped
    ("salesforce", "006B", "standard", "Closed Won", True, True),      # mapped, closed won
    ("salesforce", "006C", "standard", "Negotiation", False, False),   # pipeline mapped, stage not (DEAL-2)
    ("salesforce", "006D", "012R", "Qualification", False, False),     # unmapped record type (DEAL-3)
    ("salesforce", "006E", "012R", "Closed Won", True, True),          # unmapped record type, closed won
    ("salesforce", "006F", "standard", "Closed Lost", True, False),    # closed lost mapped to an open stage (DEAL-4)
    ("dynamics", "oA", "standard", "Qualify", False, False),           # Dynamics has no mapping
], columns=["crm", "id", "pipeline", "stage", "is_closed", "is_won"]).astype(
    {"crm": "string", "id": "string", "pipeline": "string", "stage": "string"})
SF_MAPPING = PipelineMapping("standard", "default", {"Prospecting": "appointmentscheduled", "Closed Won": "closedwon",
                                                     "Closed Lost": "appointmentscheduled"}, crm="salesforce")
DEALS = pd.DataFrame({
    "identity_id": ["salesforce:006A", "salesforce:006B", "salesforce:006C", "salesforce:006D", "salesforce:006E",
                    "salesforce:006F", "dynamics:oA", "hubspot:d1", "hubspot:d2", "hubspot:d3"],
    "hubspot_id": [None] * 7 + ["d1", "d2", "d3"],
    "salesforce_id": ["006A", "006B", "006C", "006D", "006E", "006F", None, None, None, None],
    "dynamics_id": [None] * 6 + ["oA", None, None, None],
    "linked": False,
}).astype(object)
HUBSPOT_DEALS = pd.DataFrame({"deal_id": ["d1", "d2", "d3"], "pipeline": ["default", "default", "other"],
                              "dealstage": ["closedwon", "contractsent", "x"]})


def _stages(dedicated: str | None = None, record_types: int = 2) -> pd.DataFrame:
    """The transform's stage mapping of ``KEYS`` (as ``unified`` ``deal_stages`` stores it)."""
    return map_deal_stages(KEYS, StageSettings((SF_MAPPING,), dedicated), HUBSPOT_STAGES, record_types)


def _rules(**kw) -> dict[str, DealCreateSettings]:
    sf = DealCreateSettings(pipelines=(StagePairs("standard", "default", dict(SF_MAPPING.stages)),), **kw)
    return {"salesforce": sf, "dynamics": DealCreateSettings()}


def _plan(stages: pd.DataFrame | None = None, **kw):
    values = kw.pop("values", None)
    return deal_creates(DEALS, _stages() if stages is None else stages, HUBSPOT_DEALS, _rules(**kw), values)


def test_deal_2_only_deals_in_mapped_stages_sync_the_rest_are_reported_per_record():
    """DEAL-2: an Opportunity in a mapped stage is created in HubSpot in the mapped pipeline and stage; one in an
    unmapped stage (or a Dynamics deal without a mapping) is not, and is a finding naming the record; a HubSpot
    deal goes to Salesforce through the mapping read backwards, or is reported."""
    creates, left_out, findings = _plan()
    hs = creates["hubspot"].set_index("source_id")
    assert hs.loc["006A", ["pipeline", "stage"]].tolist() == ["default", "appointmentscheduled"]
    assert "006C" not in hs.index and "oA" not in hs.index
    found = findings.set_index("id")["reason"]
    assert found["006C"] == "DEAL-2 unmapped stage: pipeline standard stage Negotiation"
    assert found["oA"].startswith("DEAL-2 unmapped pipeline")
    assert set(left_out.loc[left_out["target_crm"] == "hubspot", "source_id"]) >= {"006C", "oA"}
    sf = creates["salesforce"].set_index("source_id")
    assert sf.loc["d1", ["object_type", "pipeline", "stage"]].tolist() == ["Opportunity", "standard", "Closed Won"]
    assert {"d2", "d3"} <= set(findings.loc[findings["target_crm"] == "salesforce", "id"])
    assert "d1" not in set(creates["dynamics"]["source_id"])  # Dynamics has no mapping: nothing guessed
    # CON-8 on deals: a filter on the mapped values leaves the others out
    values = {"salesforce": pd.DataFrame({"id": ["006A", "006B"], "amount": [None, 10.0]})}
    creates, left_out, _ = _plan(filters=(Filter(property="amount", operator="has_value"),), values=values)
    assert "006A" not in set(creates["hubspot"]["source_id"]) and "006B" in set(creates["hubspot"]["source_id"])
    assert (left_out.set_index("source_id").loc["006A", "reason"]) == "CON-8 filtered out"


def test_deal_3_unmapped_record_types_land_in_a_new_salesforce_pipeline_created_first():
    """DEAL-3: Opportunities of a record type without mapping are created in `Salesforce - <RecordTypeId>`
    with their Salesforce stage names; the plan creates that pipeline with those stages (one call each); with
    a single record type the pipeline is `Salesforce - Standard pipeline`."""
    creates, _, _ = _plan()
    hs = creates["hubspot"].set_index("source_id")
    assert hs.loc["006D", ["pipeline", "stage"]].tolist() == ["Salesforce - 012R", "Qualification"]
    pipelines = pipeline_creates(creates["hubspot"], HUBSPOT_STAGES)
    assert pipelines[["object", "source_id"]].values.tolist() == [["pipeline", "Salesforce - 012R"]]
    assert pipelines["detail"].iloc[0] == "Closed Won (closed won) | Qualification"
    creates, _, _ = _plan(_stages(record_types=1))
    assert creates["hubspot"].set_index("source_id").loc["006D", "pipeline"] == "Salesforce - Standard pipeline"


def test_deal_4_closed_stages_are_recognisable_as_closed_in_both_apps():
    """DEAL-4: a closed-won Opportunity mapped to HubSpot's closed-won stage is created there; one whose mapped
    stage is not closed alike is reported, not created; a new pipeline's stage is created closed won."""
    creates, _, findings = _plan()
    hs = creates["hubspot"].set_index("source_id")
    assert hs.loc["006B", "stage"] == "closedwon"
    assert "006F" not in hs.index
    assert findings.set_index("id").loc["006F", "reason"].startswith("DEAL-4")
    pipelines = pipeline_creates(creates["hubspot"], HUBSPOT_STAGES)
    assert "Closed Won (closed won)" in pipelines["detail"].iloc[0]


def test_deal_5_a_dedicated_pipeline_keeps_synced_deals_apart():
    """DEAL-5: with a dedicated pipeline, Opportunities of unmapped record types go there (no new pipeline),
    and only the stages it lacks are added to it."""
    creates, _, _ = _plan(_stages(dedicated="synced"))
    hs = creates["hubspot"].set_index("source_id")
    assert hs.loc["006D", "pipeline"] == "synced" and hs.loc["006E", "pipeline"] == "synced"
    pipelines = pipeline_creates(creates["hubspot"], HUBSPOT_STAGES)
    assert set(pipelines["object"]) == {"pipeline_stage"}
    assert set(pipelines["source_id"]) == {"synced:Qualification", "synced:Closed Won"}


def test_deal_7_a_closed_won_opportunity_makes_its_contacts_customers():
    """DEAL-7: under the setting, the HubSpot contacts associated with a closed-won Opportunity become
    customers; stages never move backwards and an evangelist stays one."""
    contacts = pd.DataFrame({"identity_id": ["e:a", "e:b", "e:c"], "hubspot_id": ["h1", "h2", "h3"]})
    pairs = pd.DataFrame({"deal_identity": ["salesforce:006B", "salesforce:006B", "salesforce:006A"],
                          "contact_identity": ["e:a", "e:b", "e:c"], "crm": "salesforce"})
    won = won_deal_contacts(_stages(), DEALS, pairs, contacts, ["salesforce"])
    assert sorted(won) == ["h1", "h2"]
    lifecycle = pd.DataFrame({"id": ["h1", "h2", "h3"], "lifecyclestage": ["lead", "evangelist", "lead"],
                              "new_stage": ["lead", "evangelist", "lead"], "changed": False, "rule": None})
    updates, stages = contact_lifecycle_updates(lifecycle, won)
    assert updates[["record_id", "field", "old", "new"]].values.tolist() == [["h1", "lifecyclestage", "lead",
                                                                              "customer"]]
    assert updates["decided_by"].iloc[0].startswith("DEAL-7")
    assert stages.set_index("id")["new_stage"].to_dict() == {"h1": "customer", "h2": "evangelist", "h3": "lead"}
    assert won_deal_contacts(_stages(), DEALS, pairs, contacts, []).empty  # setting off: nothing


def test_deal_2_a_linked_deals_stage_is_merged_in_hubspots_terms_and_written_back_in_the_other_crms():
    """DEAL-2 for linked deals: the stage is merged like a field (CONF-2: the later change wins), in HubSpot's
    terms; written to Salesforce as the Salesforce stage the mapping names, or reported when none is mapped;
    never written over a stage the other side cannot state (unmapped)."""
    t0 = pd.Timestamp("2026-11-01T10:00:00Z")
    hubspot_deals = pd.DataFrame({"deal_id": ["d1", "d2", "d3"], "pipeline": "default",
                                  "dealstage": ["closedwon", "contractsent", "appointmentscheduled"]})
    values = stage_values(_stages(), hubspot_deals)
    links = pd.DataFrame({"hubspot_id": ["d1", "d2", "d3"], "other_id": ["006A", "006B", "006C"]})
    # d1 changed in HubSpot after 006A; d2 changed before 006B; 006C's stage is unmapped
    hubspot = values["hubspot"].assign(modified_at=[t0 + pd.Timedelta(hours=1), t0, t0 + pd.Timedelta(hours=1)])
    other = values["salesforce"].set_index("id").reindex(["006A", "006B", "006C"]).reset_index().assign(
        modified_at=[t0, t0 + pd.Timedelta(hours=1), t0])
    base = pd.DataFrame(columns=["hubspot_id", "field", "value"])
    merged = {"salesforce": merge_fields(merge_inputs(links, hubspot, other, [STAGE_FIELD], base))}
    updates = field_updates(drop_unmapped_stages(merged), "deal")
    to_hubspot = updates["hubspot"].set_index("record_id")
    assert to_hubspot.loc["d2", "new"] == "default:closedwon" and "d3" not in to_hubspot.index
    to_sf, findings = stage_updates(updates["salesforce"], "salesforce", _rules()["salesforce"])
    assert to_sf[["record_id", "new"]].values.tolist() == [["006A", "standard:Closed Won"]]
    assert findings.empty
    # a HubSpot stage without a Salesforce stage mapped onto it is reported, not written
    hubspot.loc[0, STAGE_FIELD] = "default:contractsent"
    merged = {"salesforce": merge_fields(merge_inputs(links, hubspot, other, [STAGE_FIELD], base))}
    to_sf, findings = stage_updates(field_updates(drop_unmapped_stages(merged), "deal")["salesforce"], "salesforce",
                                    _rules()["salesforce"])
    assert to_sf.empty and findings["reason"].tolist() == [
        "DEAL-2 HubSpot default:contractsent has no stage mapped in salesforce"]

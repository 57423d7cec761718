"""ROLL-2/ROLL-3: cross-CRM rollups per contact identity and the updates writing them (sync/rollup_plan.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from crm_pipelines.settings import load_settings
from crm_pipelines.settings.load import SettingsError
from crm_pipelines.settings.model import Settings
from crm_pipelines.sync.field_plan import UPDATE_COLUMNS
from crm_pipelines.sync.rollup_plan import cross_crm_rollups, deal_facts, rollup_plan, rollup_updates

T = pd.Timestamp


def _world() -> dict:
    """Deal D1 in HubSpot and Salesforce (one deal identity), D2 only in Salesforce, D3 only in Dynamics (EUR,
    converted by Dynamics), D4 only in HubSpot, open. Contact identity A has D1 (in both CRMs), D2 and D3;
    B has D4; C has none."""
    deal_identities = pd.DataFrame({
        "identity_id": ["D1", "D2", "D3", "D4"], "hubspot_id": ["h1", None, None, "h4"],
        "salesforce_id": ["s1", "s2", None, None], "dynamics_id": [None, None, "y3", None]})  # fmt: skip
    facts = {
        "hubspot": pd.DataFrame({"id": ["h1", "h4"],
                                 "created_at": [T("2024-01-01", tz="UTC"), T("2024-06-01", tz="UTC")],
                                 "close_date": [T("2024-03-01", tz="UTC"), T("2024-09-01", tz="UTC")],
                                 "amount": [100.0, 70.0], "currency": ["USD", "USD"], "is_won": [True, False]}),
        # Salesforce's copy of D1 says 999: HubSpot's record speaks for a deal both hold
        "salesforce": pd.DataFrame({"id": ["s1", "s2"], "created_at": ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"],
                                    "close_date": ["2024-03-01", "2024-05-01"], "amount": [999.0, 50.0],
                                    "currency": ["USD", "USD"], "is_won": [True, True]}),
        "dynamics": pd.DataFrame({"id": ["y3"], "created_at": ["2023-12-01T00:00:00Z"], "close_date": ["2024-04-01"],
                                  "amount": [20.0], "amount_home": [25.0], "currency": ["EUR"], "is_won": [True]}),
    }  # fmt: skip
    deal_contacts = pd.DataFrame({
        "deal_identity": ["D1", "D1", "D2", "D3", "D4"], "contact_identity": ["A", "A", "A", "A", "B"],
        "crm": ["hubspot", "salesforce", "salesforce", "dynamics", "hubspot"]})  # fmt: skip
    identities = pd.DataFrame({
        "identity_id": ["A", "B", "C"], "hubspot_id": ["100", "200", "300"],
        "salesforce_id": ["003A", None, "003C"], "salesforce_type": ["Contact", None, "Lead"],
        "dynamics_id": ["dy-a", None, None], "dynamics_type": ["contact", None, None]})  # fmt: skip
    return {"deal_identities": deal_identities, "facts": facts, "deal_contacts": deal_contacts,
            "identities": identities}  # fmt: skip


TARGETS = {"hubspot": {"num_associated_deals": "xcrm_deals", "total_revenue": "xcrm_revenue",
                       "recent_deal_close_date": "xcrm_close", "recent_deal_amount": "xcrm_amount",
                       "first_deal_created_date": "xcrm_first"},
           "salesforce": {"total_revenue": "Total_Revenue__c", "num_associated_deals": "Deals__c"}}  # fmt: skip


def _rollups(w: dict, home: str | None = "USD") -> tuple[pd.DataFrame, pd.DataFrame]:
    return cross_crm_rollups(deal_facts(w["deal_identities"], w["facts"]), w["deal_contacts"], home)


def test_roll_2_cross_crm_rollups_count_each_deal_identity_once_in_the_home_currency() -> None:
    """ROLL-2: D1 is in two CRMs and counts once (HubSpot's record speaks for it); Dynamics' converted amount is
    summed; recent_deal_amount is the most recently *created* won deal's (D2), not the most recently closed's."""
    rollups, findings = _rollups(_world())
    a = rollups.set_index("contact_identity").loc["A"]
    assert int(a["num_associated_deals"]) == 3
    assert a["total_revenue"] == 100.0 + 50.0 + 25.0
    assert a["first_deal_created_date"] == T("2023-12-01", tz="UTC")
    assert a["recent_deal_close_date"] == T("2024-05-01", tz="UTC")
    assert a["recent_deal_amount"] == 50.0
    b = rollups.set_index("contact_identity").loc["B"]
    assert int(b["num_associated_deals"]) == 1 and pd.isna(b["total_revenue"]) and pd.isna(b["recent_deal_amount"])
    assert "C" not in set(rollups["contact_identity"]) and findings.empty


def test_roll_2_a_total_mixing_currencies_it_cannot_convert_is_reported_not_summed() -> None:
    """ROLL-2: without Dynamics' converted value, A's won amounts are in USD and EUR: no total, a finding."""
    w = _world()
    w["facts"]["dynamics"] = w["facts"]["dynamics"].drop(columns="amount_home")
    rollups, findings = _rollups(w)
    assert pd.isna(rollups.set_index("contact_identity").loc["A", "total_revenue"])
    assert findings[["contact_identity", "figure"]].values.tolist() == [["A", "total_revenue"]]
    assert "EUR" in findings["reason"].iloc[0]
    updates = rollup_updates(rollups, w["identities"], None, TARGETS, findings)
    assert not ((updates["hubspot"]["record_id"] == "100") & (updates["hubspot"]["field"] == "xcrm_revenue")).any()


def test_roll_3_rollup_plan_updates_only_contacts_whose_figures_changed() -> None:
    """ROLL-3: first plan writes every configured figure of A and B (C holds nothing and has no deal: left
    alone); after applying it the plan is empty; after a deal amount changes only that contact's changed
    figures are written, old -> new, in the field-plan shape."""
    w = _world()
    rollups, findings = _rollups(w)
    first = rollup_updates(rollups, w["identities"], None, TARGETS, findings)
    assert list(first["hubspot"].columns) == list(UPDATE_COLUMNS)
    assert set(first["hubspot"]["record_id"]) == {"100", "200"}
    assert set(first["salesforce"]["record_id"]) == {"003A"}  # B has no Salesforce record; C has no deal
    assert (first["hubspot"]["decided_by"] == "ROLL-2").all() and not first["hubspot"]["conflict"].any()
    revenue = first["hubspot"].set_index(["record_id", "field"])["new"]
    assert revenue[("100", "xcrm_revenue")] == "175" and revenue[("100", "xcrm_deals")] == "3"
    assert revenue[("100", "xcrm_close")] == "2024-05-01"

    held = pd.concat([u.assign(crm=crm).rename(columns={"new": "value"})[["crm", "record_id", "field", "value"]]
                      for crm, u in first.items()])  # fmt: skip
    # what a target echoes back in its own forms: "175.0", a datetime for the date
    held["value"] = held["value"].replace({"175": "175.0", "2024-05-01": "2024-05-01T00:00:00Z"})
    again = rollup_updates(rollups, w["identities"], held, TARGETS, findings)
    assert all(u.empty for u in again.values()), again

    w["facts"]["salesforce"].loc[w["facts"]["salesforce"]["id"] == "s2", "amount"] = 80.0
    rollups, findings = _rollups(w)
    changed = rollup_updates(rollups, w["identities"], held, TARGETS, findings)
    assert changed["hubspot"][["record_id", "field", "old", "new"]].values.tolist() == [
        ["100", "xcrm_amount", "50", "80"], ["100", "xcrm_revenue", "175.0", "205"]]  # fmt: skip
    assert changed["salesforce"][["record_id", "field", "new"]].values.tolist() == [["003A", "Total_Revenue__c", "205"]]


def test_roll_3_a_contact_losing_its_deals_is_written_zero_and_blank() -> None:
    """ROLL-3: B's only deal leaves: its count goes to 0 and its dates blank where the target held values."""
    w = _world()
    rollups, findings = _rollups(w)
    held = pd.DataFrame({"crm": "hubspot", "record_id": "200", "field": ["xcrm_deals", "xcrm_first"],
                         "value": ["1", "2024-06-01T00:00:00Z"]})  # fmt: skip
    w["deal_contacts"] = w["deal_contacts"][w["deal_contacts"]["contact_identity"] != "B"]
    rollups, findings = _rollups(w)
    out = rollup_updates(rollups, w["identities"], held, {"hubspot": TARGETS["hubspot"]}, findings)["hubspot"]
    b = out[out["record_id"] == "200"]
    assert b["field"].tolist() == ["xcrm_deals", "xcrm_first"]
    assert b["new"].iloc[0] == "0" and pd.isna(b["new"].iloc[1])


def test_roll_1_rollup_plan_never_writes_hubspots_read_only_rollups(tmp_path: Path) -> None:
    """ROLL-1: naming a HubSpot calculated property as a target is a settings error naming the field, and the
    plan function refuses it too; Salesforce may use the same names for its own fields."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"sync": {"hubspot": {"rollup_targets": {"total_revenue": "total_revenue"}}}}))
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert "sync.hubspot.rollup_targets.total_revenue" in str(err.value) and "read-only" in str(err.value)
    path.write_text(yaml.safe_dump({"sync": {"salesforce": {"rollup_targets": {"total_revenue": "total_revenue"}}}}))
    assert load_settings(path).sync.salesforce.rollup_targets.fields() == {"total_revenue": "total_revenue"}
    w = _world()
    rollups, _ = _rollups(w)
    with pytest.raises(ValueError, match="num_associated_deals"):
        rollup_updates(rollups, w["identities"], None, {"hubspot": {"num_associated_deals": "num_associated_deals"}})
    # none configured by default: no plan at all
    assert Settings().sync.hubspot.rollup_targets.fields() == {}
    updates, _ = rollup_plan(Settings(), w["deal_identities"], w["facts"], w["deal_contacts"], w["identities"], None)
    assert updates == {}
    configured = Settings.model_validate({"sync": {"hubspot": {"rollup_targets": {"total_revenue": "xcrm_revenue"}},
                                                   "rollup_home_currency": "USD"}})  # fmt: skip
    updates, _ = rollup_plan(configured, w["deal_identities"], w["facts"], w["deal_contacts"], w["identities"], None)
    assert set(updates) == {"hubspot"} and set(updates["hubspot"]["field"]) == {"xcrm_revenue"}
    assert not set(updates["hubspot"]["field"]) & {"total_revenue", "num_associated_deals"}

"""Field mapping and normalization: DEAL-1 default fields, CON-10 countries/states, owners by email, types."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.transform import checks
from crm_pipelines.transform.countries import normalize_countries, normalize_states
from crm_pipelines.transform.fields import FieldMap, convert, map_fields, owner_map
from crm_pipelines_tests.transform.conftest import mirrors


def test_con10_free_text_countries_to_iso_codes():
    texts = ["USA", "US", "United States", "Vereinigte Staaten", "U.S.A.", "Deutschland", "germany ", "UK",
             "England", "España", "Türkiye", "Éire", "Polska", "CA", "Europe", "n/a", None, ""]
    out = normalize_countries(pd.Series(texts))
    assert out["code"].tolist()[:14] == ["US", "US", "US", "US", "US", "DE", "DE", "GB", "GB", "ES", "TR", "IE",
                                         "PL", "CA"]
    assert out["failed"].tolist()[14:] == [True, True, False, False]


def test_con10_states_need_the_country():
    out = normalize_states(pd.Series(["US", "US", "CA", "DE", "DE", "FR", None]),
                           pd.Series(["CA", "Calif.", "Québec", "Bayern", "NRW", "Île-de-France", "CA"]))
    assert out["code"].tolist()[:6] == ["US-CA", "US-CA", "CA-QC", "DE-BY", "DE-NW", "FR-IDF"]
    assert out["failed"].tolist()[6]  # a state without a known country cannot be normalized


def test_con10_a_state_code_the_sync_wrote_reads_back_as_itself():
    # the sync writes ISO 3166-2 codes; read back, one that did not normalize would be planned again each cycle
    out = normalize_states(pd.Series(["US", "DE", "CA"]), pd.Series(["US-CA", "de-by", "CA-QC"]))
    assert out["code"].tolist() == ["US-CA", "DE-BY", "CA-QC"]
    assert not out["failed"].any()


def test_con10_on_the_generated_universe(universe):
    people = pd.concat([c.people for c in universe.chunks()], ignore_index=True)
    got = normalize_countries(people["country_text"])
    assert (got["code"].fillna("-") == people["country_code"].fillna("-")).all()
    st = normalize_states(got["code"], people["state_text"])
    # Poland's ISO 3166-2 codes became numeric in 2023 (pycountry follows ISO; the generator uses letters)
    not_pl = people["country_code"] != "PL"
    assert (st["code"].fillna("-")[not_pl] == people["state_code"].fillna("-")[not_pl]).all()


def test_types_convert_and_report_failures_per_record():
    v, failed = convert(pd.Series(["12.5", "abc", None, "1e3"]), "number")
    assert v.tolist()[0] == 12.5 and pd.isna(v[1]) and v[3] == 1000 and failed.tolist() == [False, True, False, False]
    v, failed = convert(pd.Series(["2024-03-01T10:00:00+02:00", "2024-03-01T08:00:00Z", "1709251200000", "soon"]),
                        "datetime")
    assert v[0] == v[1] == pd.Timestamp("2024-03-01T08:00:00Z") and v[2] == pd.Timestamp("2024-03-01", tz="UTC")
    assert failed.tolist() == [False, False, False, True]
    v, _ = convert(pd.Series(["2024-03-01", "2024-03-01T00:00:00.000Z"]), "date")
    assert v[0] == v[1]
    v, failed = convert(pd.Series(["true", "0", "maybe"]), "bool")
    assert v.tolist()[:2] == [True, False] and failed.tolist() == [False, False, True]


def test_deal1_default_opportunity_fields_with_picklist_value_map_and_owner_by_email():
    m = mirrors(
        salesforce__Opportunity=[{"id": "o1", "Name": "Big", "Amount": 1200.5, "CloseDate": "2024-05-31",
                                  "Type": "New Customer", "Description": "d", "OwnerId": "005A"},
                                 {"id": "o2", "Name": "Odd", "Amount": "n/a", "CloseDate": "31.05.2024",
                                  "Type": "Partner", "OwnerId": "005Z"}],
        salesforce__User=[{"id": "005A", "Email": "Rep@Corp.com"}],
        hubspot__owners=[{"id": "77", "email": "rep@corp.com"}],
    )
    values, findings = map_fields(m.live("salesforce", "Opportunity"), "salesforce", "Opportunity",
                                  owners=owner_map(m))
    row = values.set_index("id").loc["o1"]
    assert (row["dealname"], row["amount"], row["dealtype"], row["hubspot_owner_id"]) == (
        "Big", 1200.5, "newbusiness", "77")
    assert row["closedate"] == pd.Timestamp("2024-05-31", tz="UTC")
    bad = set(map(tuple, findings[findings["id"] == "o2"][["field", "value"]].values.tolist()))
    assert bad == {("amount", "n/a"), ("closedate", "31.05.2024"), ("dealtype", "Partner"),
                   ("hubspot_owner_id", "005Z")}
    check = checks.failed_normalization(findings)
    assert not check.passed and check.count == 4 and check.by == {"salesforce/amount": 1, "salesforce/closedate": 1,
                                                                  "salesforce/dealtype": 1,
                                                                  "salesforce/hubspot_owner_id": 1}


def test_custom_field_mapping_with_value_map():
    m = mirrors(dynamics__contacts=[{"id": "d1", "new_tier": "1"}, {"id": "d2", "new_tier": "9"}])
    custom = (FieldMap("tier", "new_tier", "picklist", {"1": "gold", "2": "silver"}),)
    values, findings = map_fields(m.live("dynamics", "contacts"), "dynamics", "contacts", custom)
    assert values["tier"].tolist()[0] == "gold" and findings["id"].tolist() == ["d2"]


def test_owners_matched_across_crms_by_email():
    m = mirrors(hubspot__owners=[{"id": "1", "email": "A@x.com"}, {"id": "2", "email": "b@x.com"}],
                salesforce__User=[{"id": "005A", "Email": "a@X.com"}],
                dynamics__systemusers=[{"id": "g-b", "internalemailaddress": "b@x.com "}])
    o = owner_map(m).set_index("email")
    assert o.loc["a@x.com", ["hubspot_owner_id", "salesforce_id"]].tolist() == ["1", "005A"]
    assert o.loc["b@x.com", "dynamics_id"] == "g-b"

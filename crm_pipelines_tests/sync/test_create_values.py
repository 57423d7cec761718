"""The field values a planned create carries (``sync/create_values.py``): the source record's mapped fields
in the field plan's normalized form, CONF-6 ``set_on_create_only`` written on create, ``dont_sync`` never,
an ``always`` rule's app never written (CON-1 per field), blanks never (CONF-3)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.settings.model import FieldMapping, FieldRule
from crm_pipelines.sync.create_values import MappedField, create_values, pair_fields
from crm_pipelines.transform.fields import DEFAULT_FIELDS

CREATES = pd.DataFrame({"object": "contact", "source_crm": "hubspot", "source_id": ["h1", "h2"]})
VALUES = pd.DataFrame({"id": ["h1", "h2", "h9"], "email": ["a@x.com", "b@x.com", "z@x.com"],
                       "firstname": [" Ada ", None, "Zed"], "phone": ["+1 555", "+1 556", None],
                       "lastname": ["Lovelace", "", "Z"], "hs_source": ["web", "import", None],
                       "num_employees": ["12.0", None, None]})  # fmt: skip


def _values(frame: pd.DataFrame) -> dict:
    return {(r.source_id, r.target_field): r.value for r in frame.itertuples()}


def test_a_create_carries_its_source_records_mapped_values_in_the_normalized_form():
    fields = pair_fields(DEFAULT_FIELDS[("salesforce", "Lead")], [], {})
    out = create_values(CREATES, VALUES, fields, to_hubspot=False, target_object="Lead")
    got = _values(out)
    assert got[("h1", "Email")] == "a@x.com" and got[("h1", "FirstName")] == "Ada"  # trimmed, as the merge compares
    assert got[("h1", "LastName")] == "Lovelace" and got[("h2", "Phone")] == "+1 556"
    # CONF-3: blanks are not written; only the planned records
    assert ("h2", "FirstName") not in got and ("h2", "LastName") not in got and not (out["source_id"] == "h9").any()
    assert set(out["target_object"]) == {"Lead"} and set(out["rule"]) == {"two_way"}


def test_conf6_set_on_create_only_is_written_on_create_and_dont_sync_never():
    customs = [FieldMapping(hubspot="hs_source", other="LeadSource", object="Lead", rule="set_on_create_only"),
               FieldMapping(hubspot="num_employees", other="NumberOfEmployees", object="Lead", type="number")]
    rules = {"phone": FieldRule.DONT_SYNC, "hs_source": FieldRule.SET_ON_CREATE_ONLY}
    fields = pair_fields(DEFAULT_FIELDS[("salesforce", "Lead")], customs, rules)
    got = create_values(CREATES, VALUES, fields, to_hubspot=False, target_object="Lead")
    by = got.set_index(["source_id", "target_field"])
    assert by.loc[("h1", "LeadSource"), ["value", "rule"]].tolist() == ["web", "set_on_create_only"]
    assert by.loc[("h1", "NumberOfEmployees"), "value"] == "12"  # a number as the merge compares it
    assert not (got["field"] == "phone").any()


def test_con1_an_always_rule_never_writes_the_app_it_reads_from():
    fields = [MappedField("email", "Email", "email"),
              MappedField("firstname", "FirstName", rule=FieldRule.ALWAYS_HUBSPOT),
              MappedField("lastname", "LastName", rule=FieldRule.ALWAYS_OTHER)]
    to_sf = create_values(CREATES, VALUES, fields, to_hubspot=False, target_object="Contact")
    assert set(to_sf["field"]) == {"email", "firstname"}
    from_sf = pd.DataFrame({"object": "contact", "source_crm": "salesforce", "source_id": ["003A"]})
    sf_values = pd.DataFrame({"id": ["003A"], "email": ["s@x.com"], "firstname": ["Sam"], "lastname": ["Stone"]})
    to_hs = create_values(from_sf, sf_values, fields, to_hubspot=True, target_object="contacts")
    assert _values(to_hs) == {("003A", "email"): "s@x.com", ("003A", "lastname"): "Stone"}  # named as in HubSpot

"""OPS-9: planned values in the form each API takes, and text longer than the target's field reported per record
and field, never cut (``sync/value_forms.py``)."""

from __future__ import annotations

import pandas as pd

import crm_pipelines.sandbox.dynamics.catalog as dynamics_catalog
import crm_pipelines.sandbox.salesforce.catalog as salesforce_catalog
from crm_pipelines.sync.value_forms import DATE_ONLY, LENGTHS, api_form, update_forms, value_forms
from crm_pipelines.transform.fields import DEFAULT_FIELDS

DAY = pd.Series(["2026-12-01", None])
MOMENT = pd.Series(["2026-12-01T09:30:15Z"])
MIDNIGHT_MS = str(int(pd.Timestamp("2026-12-01", tz="UTC").timestamp() * 1000))


def test_ops9_hubspot_date_only_properties_are_midnight_utc_epoch_ms():
    assert api_form(DAY, "date", "hubspot").tolist() == [MIDNIGHT_MS, None]
    assert MIDNIGHT_MS == "1796083200000"
    in_ms = int(MIDNIGHT_MS) + (9 * 3600 + 30 * 60 + 15) * 1000
    assert api_form(MOMENT, "datetime", "hubspot").tolist() == [str(in_ms)]
    # a datetime where a date is mapped still lands on the day's midnight
    assert api_form(pd.Series(["2026-12-01T23:59:00Z"]), "date", "hubspot").tolist() == [MIDNIGHT_MS]


def test_ops9_salesforce_dates_are_yyyy_mm_dd_and_datetimes_utc():
    assert api_form(DAY, "date", "salesforce").tolist() == ["2026-12-01", None]
    assert api_form(pd.Series(["2026-12-01T10:30:15+01:00"]), "datetime", "salesforce").tolist() == [
        "2026-12-01T09:30:15.000Z"]


def test_ops9_dataverse_datetimes_are_edm_datetimeoffset_and_date_only_columns_edm_date():
    assert api_form(MOMENT, "datetime", "dynamics").tolist() == ["2026-12-01T09:30:15Z"]
    assert api_form(MOMENT, "datetime", "dynamics", date_only=True).tolist() == ["2026-12-01"]
    assert ("dynamics", "opportunities", "estimatedclosedate") in DATE_ONLY
    assert api_form(pd.Series(["x", "12"]), "text", "dynamics").tolist() == ["x", "12"]  # other kinds as they are


def test_ops9_numbers_and_yes_no_are_typed_json_for_salesforce_and_dataverse_text_for_hubspot():
    # Dataverse refuses "1200" for an Edm.Decimal (Money) column: a JSON number
    assert api_form(pd.Series(["1200", "24420.69", None]), "number", "dynamics").tolist() == [1200.0, 24420.69, None]
    assert api_form(pd.Series(["true", "false"]), "bool", "salesforce").tolist() == [True, False]
    assert api_form(pd.Series(["1200"]), "number", "hubspot").tolist() == ["1200"]


def test_ops9_text_longer_than_the_target_field_is_a_finding_naming_record_and_field_never_cut():
    values = pd.DataFrame({
        "object": "contact", "source_crm": "hubspot", "source_id": ["h1", "h2", "h3"], "target_object": "Lead",
        "target_field": ["FirstName", "FirstName", "CloseDate"], "kind": ["text", "text", "date"],
        "value": ["Ada", "A" * 41, "2026-12-01"]})  # fmt: skip
    out, found = value_forms(values, "salesforce")
    assert out["api_value"].tolist() == ["Ada", None, "2026-12-01"]  # not cut to 40
    # the record named is the create's source, in its own CRM (the plan files the finding under its identity)
    assert found[["object", "crm", "id", "target_crm"]].values.tolist() == [["contact", "hubspot", "h2", "salesforce"]]
    assert found["reason"].iloc[0] == "OPS-9 Lead.FirstName is 41 characters, longer than its 40: not cut, not written"
    # the same name fits Dynamics' 50
    dyn = values.assign(target_object="leads", target_field=["firstname", "firstname", "estimatedclosedate"])
    out, found = value_forms(dyn, "dynamics")
    assert found.empty and out["api_value"].iloc[1] == "A" * 41


def test_ops9_the_lengths_are_the_salesforce_describe_and_dataverse_metadata_ones():
    sf = {obj: {f.name: f for f in salesforce_catalog.OBJECT_FIELDS[obj]} for obj in ("Lead", "Contact", "Account",
                                                                                       "Opportunity", "Task")}
    dy = {t.entity_set: {a.name: a for a in t.attributes} for t in (dynamics_catalog.CONTACT, dynamics_catalog.LEAD,
                                                                     dynamics_catalog.ACCOUNT,
                                                                     dynamics_catalog.OPPORTUNITY)}
    for (crm, obj, fld), n in LENGTHS.items():
        assert (sf[obj][fld].length if crm == "salesforce" else dy[obj][fld].max_length) == n, (crm, obj, fld)
    # every text field a default mapping writes has its length listed
    for (crm, obj), maps in DEFAULT_FIELDS.items():
        if crm == "salesforce":
            text = [m.other for m in maps if sf[obj][m.other].type in ("string", "email", "phone", "url", "textarea",
                                                                        "picklist")]
        elif crm == "dynamics":
            text = [m.other for m in maps if m.other in dy[obj] and dy[obj][m.other].type in ("String", "Memo")]
        else:
            continue
        assert all((crm, obj, f) in LENGTHS for f in text), (crm, obj, text)
        if crm == "dynamics":  # every date-only column a default mapping writes is written as a date
            assert {("dynamics", obj, m.other) for m in maps if m.other in dy[obj] and dy[obj][m.other].date_only
                    } <= DATE_ONLY


def test_ops9_updates_are_named_and_formed_as_the_target_api_takes_them():
    updates = pd.DataFrame({
        "kind": ["deal", "deal", "contact", "contact"], "record_id": ["0061", "0061", "00Q1", "0031"],
        "hubspot_id": ["d1", "d1", "h1", "h2"], "source_crm": "hubspot", "source_id": ["d1", "d1", "h1", "h2"],
        "field": ["closedate", "dealname", "firstname", "firstname"], "old": None,
        "new": ["2026-12-01", "Big deal", "B" * 41, "Bo"], "decided_by": "x", "conflict": False})  # fmt: skip
    fields = pd.DataFrame([("Opportunity", "closedate", "CloseDate", "date"),
                           ("Opportunity", "dealname", "Name", "text"), ("Lead", "firstname", "FirstName", "text"),
                           ("Contact", "firstname", "FirstName", "text")],
                          columns=["target_object", "field", "target_field", "kind"])
    objects = pd.Series(["Opportunity", "Opportunity", "Lead", "Contact"])
    out, found = update_forms(updates, "salesforce", objects, fields)
    assert out["target_field"].tolist() == ["CloseDate", "Name", "FirstName", "FirstName"]
    assert out["api_value"].tolist() == ["2026-12-01", "Big deal", None, "Bo"]
    assert found[["object", "id"]].values.tolist() == [["contact", "00Q1"]] and "Lead.FirstName" in found["reason"][0]
    to_hubspot = updates.iloc[:1].assign(record_id="d1")
    out, _ = update_forms(to_hubspot, "hubspot", pd.Series(["deals"]),
                          pd.DataFrame([("deals", "closedate", "closedate", "date")], columns=fields.columns))
    assert out["api_value"].tolist() == [MIDNIGHT_MS]


def test_ops9_a_plan_keeping_only_findings_forms_only_the_values_that_can_be_too_long():
    """A full plan keeps the too-long findings of its creates, not their values: ``may_be_too_long`` keeps only
    the records with a text longer than its limit as read (stripped, it is never longer), and the findings are
    the same as when every value is formed (OPS-9)."""
    from crm_pipelines.sync.create_values import MappedField, create_values
    from crm_pipelines.sync.value_forms import may_be_too_long

    fields = [MappedField("firstname", "FirstName", "text"), MappedField("email", "Email", "email")]
    values = pd.DataFrame({"id": ["h1", "h2", "h3", "h4"],
                           "firstname": ["Ada", "A" * 41, " " + "B" * 40, None],
                           "email": ["a@x.io", "b@x.io", "c@x.io", "d" * 76 + "@x.io"]})  # fmt: skip
    creates = pd.DataFrame({"object": "contact", "source_crm": "hubspot", "source_id": ["h1", "h2", "h3", "h4"]})
    limits = {f.hubspot: (f.kind, LENGTHS[("salesforce", "Lead", f.other)]) for f in fields}
    few = may_be_too_long(values, limits)
    # h3's name is 41 as read, 40 once stripped: read, then not found
    assert few["id"].tolist() == ["h2", "h3", "h4"]

    def findings(source: pd.DataFrame) -> list:
        formed = create_values(creates, source, fields, to_hubspot=False, target_object="Lead")
        return sorted(value_forms(formed, "salesforce")[1][["id", "reason"]].values.tolist())

    assert findings(few) == findings(values) == [
        ["h2", "OPS-9 Lead.FirstName is 41 characters, longer than its 40: not cut, not written"],
        ["h4", "OPS-9 Lead.Email is 81 characters, longer than its 80: not cut, not written"]]
    # a formatted kind (a number, a date) is not the text as read: every record is kept
    assert len(may_be_too_long(values, {"firstname": ("number", 40)})) == len(values)

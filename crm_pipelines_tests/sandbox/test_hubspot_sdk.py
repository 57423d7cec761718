"""The HubSpot sandbox driven by HubSpot's own SDK (hubspot-api-client) with client-side validation on.

Every response below is deserialized into the SDK's generated models, so a missing required field or a
wrong type fails the test. Facts cited as FACTS §n are from shared/specs/hubspot/FACTS.md.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate
from hubspot.utils.objects import fetch_all

from crm_pipelines_tests.sandbox.conftest import RunningSandbox


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:8]}@sdk-test.example.com"


def test_sdk_validation_is_switched_on(hubspot: RunningSandbox) -> None:
    api = hubspot.sdk().crm.contacts.basic_api
    assert api.api_client.configuration.client_side_validation is True


def test_paging_through_all_contacts_matches_the_generator(pristine_hubspot: RunningSandbox) -> None:
    """SDK get_all pages with limit=100 until paging.next is absent (FACTS §1, §13)."""
    api = pristine_hubspot.sdk().crm.contacts.basic_api
    contacts = fetch_all(api, properties=["email", "firstname", "lastname"])
    with pristine_hubspot.admin() as admin:
        manifest = admin.get("/manifest").json()
        stats = admin.get("/stats").json()
    expected = manifest["crms"]["hubspot"]["contacts"]
    assert expected > 100, "the test must span several pages"
    assert len(contacts) == expected == stats["contacts"]["live"]
    assert len({c.id for c in contacts}) == expected
    assert all(c.created_at <= c.updated_at for c in contacts)
    without_email = sum(1 for c in contacts if not c.properties.get("email"))
    assert without_email == manifest["crms"]["hubspot"]["contacts_without_email"]


def test_list_rejects_a_page_larger_than_100(hubspot: RunningSandbox) -> None:
    with hubspot.api() as client:
        r = client.get("/crm/v3/objects/contacts", params={"limit": 101})
    assert r.status_code == 400
    assert r.json()["category"] == "VALIDATION_ERROR"


def test_search_with_filter_groups_and_sorts(hubspot: RunningSandbox) -> None:
    """Groups are ORed, filters ANDed, one sort applied, dates as epoch ms (FACTS §2)."""
    sdk = hubspot.sdk()
    everyone = fetch_all(sdk.crm.contacts.basic_api, properties=["email", "lifecyclestage", "lastmodifieddate"])
    stamps = sorted(c.updated_at for c in everyone)
    cutoff = stamps[len(stamps) // 2]
    cutoff_ms = int(cutoff.timestamp() * 1000)
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(cutoff_ms)},
                         {"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]},
            {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "evangelist"}]},
        ],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
        properties=["email", "lifecyclestage", "lastmodifieddate"],
        limit=200,
        after="0",
    )
    page = sdk.crm.contacts.search_api.do_search(public_object_search_request=request)
    expected = {
        c.id for c in everyone
        if (c.updated_at >= cutoff and c.properties["lifecyclestage"] == "customer")
        or c.properties["lifecyclestage"] == "evangelist"
    }
    assert page.total == len(expected) > 0
    found = list(page.results)
    while page.paging and page.paging.next:
        request.after = page.paging.next.after
        page = sdk.crm.contacts.search_api.do_search(public_object_search_request=request)
        found += page.results
    assert {c.id for c in found} == expected
    modified = [c.updated_at for c in found]
    assert modified == sorted(modified, reverse=True)


def test_search_is_case_insensitive_for_strings_and_supports_wildcard_tokens(hubspot: RunningSandbox) -> None:
    sdk = hubspot.sdk()
    email = unique_email("Search.Case")
    sdk.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": email}))
    for f in (
        {"propertyName": "email", "operator": "EQ", "value": email.upper()},
        {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*" + email[email.index("@"):]},
        {"propertyName": "email", "operator": "IN", "values": [email.lower()]},
    ):
        page = sdk.crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(
                filter_groups=[{"filters": [f]}], properties=["email"]
            )
        )
        assert [c.properties["email"] for c in page.results] == [email], f


def test_search_past_10000_results_is_refused(hubspot: RunningSandbox) -> None:
    """Paging beyond 10,000 results returns HTTP 400 (FACTS §2)."""
    with pytest.raises(ApiException) as err:
        hubspot.sdk().crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(limit=200, after="9900")
        )
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["category"] == "VALIDATION_ERROR" and body["correlationId"]


def test_search_filter_limits(hubspot: RunningSandbox) -> None:
    """At most 5 groups, 6 filters per group, 18 in total (FACTS §2, current guide)."""
    f = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    with hubspot.api() as client:
        too_many_groups = client.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [f]}] * 6})
        too_many_in_group = client.post(
            "/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [f] * 7}]}
        )
        ok = client.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [f] * 6}] * 3})
    assert too_many_groups.status_code == too_many_in_group.status_code == 400
    assert ok.status_code == 200


def test_batch_create_with_an_invalid_record_fails_whole_batch(hubspot: RunningSandbox) -> None:
    """Without objectWriteTraceIds one bad input fails the batch and nothing is written (FACTS §3)."""
    sdk = hubspot.sdk()
    good = [unique_email("batch.good"), unique_email("batch.good")]
    inputs = [{"properties": {"email": good[0]}}, {"properties": {"email": "not-an-email"}},
              {"properties": {"email": good[1]}}]
    with pytest.raises(ApiException) as err:
        sdk.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["code"] == "INVALID_EMAIL"
    assert body["errors"][0]["context"] == {"propertyName": ["email"]}
    for email in good:
        with pytest.raises(ApiException) as missing:
            sdk.crm.contacts.basic_api.get_by_id(email, id_property="email")
        assert missing.value.status == 404


def test_batch_create_with_trace_ids_reports_multi_status(hubspot: RunningSandbox) -> None:
    """With a unique objectWriteTraceId per input, valid inputs are created and failures listed (207)."""
    sdk = hubspot.sdk()
    good = [unique_email("multi.a"), unique_email("multi.b")]
    inputs = [
        {"properties": {"email": good[0], "firstname": "Zoë"}, "objectWriteTraceId": "t1"},
        {"properties": {"email": "bad@@example.com"}, "objectWriteTraceId": "t2"},
        {"properties": {"email": good[1], "no_such_property": "x"}, "objectWriteTraceId": "t3"},
        {"properties": {"email": good[1]}, "objectWriteTraceId": "t4"},
    ]
    result = sdk.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    assert result.num_errors == 2
    assert sorted(e.context["objectWriteTraceId"][0] for e in result.errors) == ["t2", "t3"]
    assert {e.category for e in result.errors} == {"VALIDATION_ERROR"}
    assert sorted(r.properties["email"] for r in result.results) == sorted(good)
    assert any("PROPERTY_DOESNT_EXIST" in e.message for e in result.errors)


def test_batch_update_with_an_invalid_value_among_valid_ones(hubspot: RunningSandbox) -> None:
    sdk = hubspot.sdk()
    created = sdk.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": {"email": unique_email("upd")}} for _ in range(3)]
    )).results
    ids = [c.id for c in created]
    update = BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"lifecyclestage": "customer"}},
        {"id": ids[1], "properties": {"lifecyclestage": "not-a-stage"}},
        {"id": ids[2], "properties": {"lifecyclestage": "lead"}},
    ])
    with pytest.raises(ApiException) as err:
        sdk.crm.contacts.batch_api.update(update)
    assert json.loads(err.value.body)["errors"][0]["code"] == "INVALID_OPTION"
    unchanged = sdk.crm.contacts.basic_api.get_by_id(ids[0], properties=["lifecyclestage"])
    assert unchanged.properties["lifecyclestage"] is None

    for i, item in enumerate(update.inputs):
        item["objectWriteTraceId"] = f"u{i}"
    result = sdk.crm.contacts.batch_api.update(update)
    assert [e.context["objectWriteTraceId"] for e in result.errors] == [["u1"]]
    stages = {r.id: r.properties["lifecyclestage"] for r in result.results}
    assert stages == {ids[0]: "customer", ids[2]: "lead"}


def test_duplicate_email_is_a_conflict_naming_the_existing_id(hubspot: RunningSandbox) -> None:
    """Contacts are unique by email, case-insensitively (FACTS §6)."""
    api = hubspot.sdk().crm.contacts.basic_api
    email = unique_email("dup")
    first = api.create(SimplePublicObjectInputForCreate(properties={"email": email}))
    with pytest.raises(ApiException) as err:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "  " + email.upper() + " "}))
    assert err.value.status == 409
    body = json.loads(err.value.body)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first.id}"


def test_unknown_id_gets_the_live_api_404_body(hubspot: RunningSandbox) -> None:
    with pytest.raises(ApiException) as err:
        hubspot.sdk().crm.contacts.basic_api.get_by_id("99")
    body = json.loads(err.value.body)
    assert err.value.status == 404
    assert body["message"] == "Object not found.  objectId are usually numeric."
    assert body["category"] == "OBJECT_NOT_FOUND" and body["context"] == {"id": ["99"]}


def test_upsert_by_email_creates_then_updates(hubspot: RunningSandbox) -> None:
    sdk = hubspot.sdk()
    email = unique_email("upsert")
    body = {"inputs": [{"id": email, "idProperty": "email", "properties": {"firstname": "Łukasz"}}]}
    first = sdk.crm.contacts.batch_api.upsert(body)
    second = sdk.crm.contacts.batch_api.upsert(
        {"inputs": [{"id": email, "idProperty": "email", "properties": {"lastname": "O'Brien"}}]}
    )
    assert first.results[0].new is True and second.results[0].new is False
    assert first.results[0].id == second.results[0].id
    record = sdk.crm.contacts.basic_api.get_by_id(email, id_property="email", properties=["firstname", "lastname"])
    assert record.properties == {"firstname": "Łukasz", "lastname": "O'Brien"}


def test_associations_v4_between_contacts_companies_and_deals(hubspot: RunningSandbox) -> None:
    """Default type ids per direction, primary label carrying the unlabeled type too (FACTS §10)."""
    sdk = hubspot.sdk()
    contact = sdk.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": unique_email("assoc")})
    )
    company = sdk.crm.companies.basic_api.create({"properties": {"name": "Assoc GmbH", "domain": "assoc.example"}})
    deal = sdk.crm.deals.basic_api.create({"properties": {"dealname": "Assoc deal", "pipeline": "default",
                                                          "dealstage": "appointmentscheduled", "amount": "100"}})
    v4 = sdk.crm.associations.v4
    v4.basic_api.create_default("contacts", contact.id, "companies", company.id)
    v4.basic_api.create("deals", deal.id, "contacts", contact.id,
                        [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}])
    v4.batch_api.create("deals", "companies", {"inputs": [{
        "from": {"id": deal.id}, "to": {"id": company.id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
    }]})

    to_company = v4.basic_api.get_page("contacts", contact.id, "companies")
    assert [r.to_object_id for r in to_company.results] == [company.id]
    assert {t.type_id for t in to_company.results[0].association_types} == {279}
    from_company = v4.basic_api.get_page("companies", company.id, "contacts").results[0]
    assert from_company.association_types[0].type_id == 280

    deal_links = v4.batch_api.get_page("deals", "companies", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": deal.id}]))
    types = {t.type_id: t.label for t in deal_links.results[0].to[0].association_types}
    assert types == {341: None, 5: "Primary"}
    back = v4.basic_api.get_page("companies", company.id, "deals").results[0]
    assert {t.type_id for t in back.association_types} == {342, 6}
    contacts_of_deal = v4.basic_api.get_page("contacts", contact.id, "deals").results
    assert [(r.to_object_id, r.association_types[0].type_id) for r in contacts_of_deal] == [(deal.id, 4)]

    unlink = {"inputs": [{"from": {"id": contact.id}, "to": [{"id": company.id}]}]}
    v4.batch_api.archive("contacts", "companies", unlink)
    assert v4.basic_api.get_page("contacts", contact.id, "companies").results == []
    assert v4.basic_api.get_page("companies", company.id, "contacts").results == []
    labels = v4.schema.definitions_api.get_all("contacts", "companies").results
    assert {(label.type_id, label.label) for label in labels} == {(279, None), (1, "Primary")}


def test_seeded_data_carries_associations(pristine_hubspot: RunningSandbox) -> None:
    sdk = pristine_hubspot.sdk()
    deals = fetch_all(sdk.crm.deals.basic_api, associations=["contacts", "companies"])
    with pristine_hubspot.admin() as admin:
        manifest = admin.get("/manifest").json()["crms"]["hubspot"]
    assert len(deals) == manifest["deals"]
    linked = sum(
        len(d.associations["contacts"].results) for d in deals if d.associations and "contacts" in d.associations
    )
    assert linked == manifest["deal_contacts"]


def test_pipelines_and_every_stage_are_served(pristine_hubspot: RunningSandbox) -> None:
    """Two deal pipelines; stages with probability/isClosed metadata (FACTS §11); seeded deals use every stage."""
    sdk = pristine_hubspot.sdk()
    pipelines = sdk.crm.pipelines.pipelines_api.get_all("deals").results
    assert len(pipelines) >= 2
    default = next(p for p in pipelines if p.id == "default")
    stage_ids = [s.id for s in default.stages]
    assert stage_ids == ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                         "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"]
    closed = {s.id: s.metadata["probability"] for s in default.stages if s.metadata["isClosed"] == "true"}
    assert closed == {"closedwon": "1.0", "closedlost": "0.0"}
    assert default.stages[0].created_at == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    deals = fetch_all(sdk.crm.deals.basic_api, properties=["pipeline", "dealstage"])
    used = {(d.properties["pipeline"], d.properties["dealstage"]) for d in deals}
    assert used == {(p.id, s.id) for p in pipelines for s in p.stages}

    stages = sdk.crm.pipelines.pipeline_stages_api.get_all("deals", "default").results
    assert [s.id for s in stages] == stage_ids


def test_owners_exist_with_emails(hubspot: RunningSandbox) -> None:
    owners = hubspot.sdk().crm.owners.owners_api.get_page(limit=100).results
    assert owners and all(o.email and o.type == "PERSON" for o in owners)
    one = hubspot.sdk().crm.owners.owners_api.get_page(email=owners[0].email.upper()).results
    assert [o.id for o in one] == [owners[0].id]


def test_properties_read_and_custom_property_create(hubspot: RunningSandbox) -> None:
    core = hubspot.sdk().crm.properties.core_api
    props = {p.name: p for p in core.get_all("contacts").results}
    assert props["email"].has_unique_value is True
    assert props["hs_object_id"].modification_metadata.read_only_value is True
    name = f"sync_source_{uuid.uuid4().hex[:6]}"
    created = core.create("contacts", PropertyCreate(name=name, label="Sync source", type="string",
                                                     field_type="text", group_name="contactinformation"))
    assert created.name == name and created.hubspot_defined is False
    api = hubspot.sdk().crm.contacts.basic_api
    contact = api.create(SimplePublicObjectInputForCreate(properties={"email": unique_email("custom"), name: "sf"}))
    assert api.get_by_id(contact.id, properties=[name]).properties[name] == "sf"
    with pytest.raises(PropertiesApiException) as err:
        core.create("contacts", PropertyCreate(name=name, label="again", type="string", field_type="text",
                                               group_name="contactinformation"))
    assert err.value.status == 409


def test_property_history_records_the_source_of_each_change(hubspot: RunningSandbox) -> None:
    api = hubspot.sdk().crm.contacts.basic_api
    contact = api.create(
        SimplePublicObjectInputForCreate(properties={"email": unique_email("hist"), "firstname": "Ann"})
    )
    api.update(contact.id, {"properties": {"firstname": "Anna"}})
    with hubspot.admin() as admin:
        admin.patch(f"/ui/contacts/{contact.id}", json={"properties": {"firstname": "Anne"}}).raise_for_status()
    record = api.get_by_id(contact.id, properties_with_history=["firstname"])
    history = [(h.value, h.source_type) for h in record.properties_with_history["firstname"]]
    assert history == [("Anne", "CRM_UI"), ("Anna", "INTEGRATION"), ("Ann", "INTEGRATION")]

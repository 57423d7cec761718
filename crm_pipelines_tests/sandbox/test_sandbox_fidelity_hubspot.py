"""Issue 16, HubSpot: what clients written elsewhere expect of the API, checked over real HTTP.

SDK calls run with client-side validation on (every answer deserialized into HubSpot's own models); the rest
is checked on the wire. FACTS §n is shared/specs/hubspot/FACTS.md.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hubspot.crm.objects import PublicObjectSearchRequest as ObjectsSearchRequest
from hubspot.crm.objects import SimplePublicObjectInputForCreate as ObjectInput
from hubspot.crm.objects.calls import ApiException as CallsApiException
from hubspot.utils.objects import fetch_all

from crm_pipelines.crm.hubspot.inline_associations import inline_targets
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

CONTACTS = "/crm/v3/objects/contacts"


def epoch_ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- search: a top-level "filters" list is applied, never dropped (issue 16; FACTS §2) ---------------------
def test_top_level_filters_are_applied_through_the_sdk(hubspot: RunningSandbox) -> None:
    """A body with ``filters`` and no ``filterGroups`` (what the API accepts, HubSpot Node SDK issue 491) filters
    like one group: an hs_object_id GTE window returns exactly the contacts at or above the id, not everyone."""
    sdk = hubspot.sdk()
    everyone = sorted(int(c.id) for c in fetch_all(sdk.crm.contacts.basic_api))
    cutoff = everyone[len(everyone) - 25]
    # The SDK's request model has no ``filters`` attribute; it sends a plain dict body as it is.
    body = {
        "filters": [{"propertyName": "hs_object_id", "operator": "GTE", "value": str(cutoff)}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 100,
        "after": "0",
    }
    page = sdk.crm.contacts.search_api.do_search(public_object_search_request=body)
    assert page.total == 25
    assert [int(r.id) for r in page.results] == everyone[-25:]


def test_top_level_filters_are_anded_and_join_filter_groups_as_one_more_group(hubspot: RunningSandbox) -> None:
    """Filters of the top-level list are ANDed; beside filterGroups they are one more (ORed) group."""
    with hubspot.api() as client:
        everyone = client.post(f"{CONTACTS}/search", json={"limit": 200, "properties": ["lastmodifieddate"]})
        ids = sorted(int(r["id"]) for r in everyone.json()["results"])
        low, high = ids[10], ids[20]
        anded = client.post(f"{CONTACTS}/search", json={"limit": 200, "filters": [
            {"propertyName": "hs_object_id", "operator": "GTE", "value": str(low)},
            {"propertyName": "hs_object_id", "operator": "LT", "value": str(high)},
        ]}).json()
        assert sorted(int(r["id"]) for r in anded["results"]) == ids[10:20]
        both = client.post(f"{CONTACTS}/search", json={"limit": 200,
            "filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(ids[0])}],
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(ids[1])}]}],
        }).json()
        assert sorted(int(r["id"]) for r in both["results"]) == ids[:2]


def test_top_level_filters_on_the_modification_date(hubspot: RunningSandbox) -> None:
    """The incremental-sync shape (FACTS §8): ``lastmodifieddate GTE <epoch ms>`` as a top-level filter."""
    with hubspot.api() as client:
        newest = client.post(f"{CONTACTS}/search", json={
            "limit": 5, "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
            "properties": ["lastmodifieddate"],
        }).json()
        total = newest["total"]
        cutoff = epoch_ms(newest["results"][-1]["updatedAt"])
        recent = client.post(f"{CONTACTS}/search", json={
            "limit": 200, "filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(cutoff)}],
        }).json()
    assert 5 <= recent["total"] < total


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"filters": {"propertyName": "email"}}, "filters must be a list"),
        ({"filters": ["email"]}, "filters must be a list"),
        ({"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}, "operator"),
        ({"filters": [{"propertyName": "no_such_property", "operator": "EQ", "value": "x"}]}, "no_such_property"),
        ({"filterGroups": [{"filters": ["email"]}]}, "filter must be an object"),
        ({"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1"}] * 19}, "Too many filters"),
    ],
)
def test_search_bodies_hubspot_rejects_get_a_400_not_every_record(
    hubspot: RunningSandbox, body: dict, fragment: str
) -> None:
    """Never drop a filter silently: what cannot be applied answers 400 VALIDATION_ERROR (FACTS §2, §5)."""
    with hubspot.api() as client:
        r = client.post(f"{CONTACTS}/search", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["category"] == "VALIDATION_ERROR"
    assert fragment in r.json()["message"]
    assert r.json()["correlationId"] == r.headers["X-HubSpot-Correlation-Id"]


# -- error shapes and correlation ids (issue 16; FACTS §4, §5) ----------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/crm/v3/no/such/route", 404),
        ("GET", "/", 404),
        ("POST", "/crm/v2/objects/contacts", 404),
        ("PUT", "/crm/v3/objects/contacts", 405),
        ("GET", "/crm/v3/schemas/p_cars", 404),
    ],
)
def test_unknown_routes_answer_hubspots_json_error_shape(
    hubspot: RunningSandbox, method: str, path: str, status: int
) -> None:
    """Issue 16: every unknown route (and a known path with another method) answers HubSpot's JSON error body
    (FACTS §5), never the framework's plain-text ``Not Found``."""
    with hubspot.api() as client:
        r = client.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "error" and body["message"] and body["category"]
    assert str(uuid.UUID(body["correlationId"])) == body["correlationId"] == r.headers["X-HubSpot-Correlation-Id"]


def test_schemas_of_a_portal_without_custom_objects(hubspot: RunningSandbox) -> None:
    """Issue 16: ``GET /crm/v3/schemas`` (and the SDK's ``/crm-object-schemas/v3/schemas``): ``{"results": []}``
    for a portal without custom objects, read through the SDK's schemas client (FACTS §14)."""
    page = hubspot.sdk().crm.schemas.core_api.get_all()
    assert page.results == []


def test_correlation_id_header_equals_the_body_on_every_answer(hubspot: RunningSandbox) -> None:
    """Validation errors, 404s, the 10-second 429 and the search 429: one id, header == body (FACTS §4)."""
    answers = []
    with hubspot.api() as client:
        answers.append(client.get(f"{CONTACTS}/999"))
        answers.append(client.get(CONTACTS, params={"limit": 500}))
        with hubspot.admin() as admin:
            admin.put("/faults", json={"rate_limit_multiplier": 0.05}).raise_for_status()
        throttled = [client.get(CONTACTS, params={"limit": 1}) for _ in range(12)]
        searches = [client.post(f"{CONTACTS}/search", json={"limit": 1}) for _ in range(4)]
    answers += [r for r in throttled + searches if r.status_code == 429]
    assert {r.json().get("policyName") for r in answers if r.status_code == 429} == {"TEN_SECONDLY_ROLLING",
                                                                                    "SECONDLY"}
    for r in answers:
        assert r.status_code >= 400
        assert r.json()["correlationId"] == r.headers["X-HubSpot-Correlation-Id"], r.text


@pytest.mark.parametrize("fault", ["rate_429", "rate_503"])
def test_injected_faults_carry_the_same_correlation_id_in_header_and_body(hubspot: RunningSandbox, fault: str) -> None:
    """Issue 16: the fault middleware's 429 and 5xx answers carry one correlation id, header == body."""
    with hubspot.admin() as admin:
        admin.put("/faults", json={fault: 1.0}).raise_for_status()
    with hubspot.api() as client:
        r = client.get(CONTACTS)
    assert r.status_code in (429, 503)
    assert r.json()["correlationId"] == r.headers["X-HubSpot-Correlation-Id"]


def test_an_injected_429_on_search_is_the_secondly_limit(hubspot: RunningSandbox) -> None:
    """Search is exempt from the ten-secondly limit (FACTS §2): a throttled search names its own per-second
    limit and asks to wait a second, not ten; other endpoints keep the ten-secondly answer."""
    with hubspot.admin() as admin:
        admin.put("/faults", json={"rate_429": 1.0}).raise_for_status()
    with hubspot.api() as client:
        search = client.post(f"{CONTACTS}/search", json={"limit": 1})
        listed = client.get(CONTACTS)
    assert search.status_code == 429 and search.json()["policyName"] == "SECONDLY"
    assert float(search.headers["Retry-After"]) <= 1
    assert listed.status_code == 429 and listed.json()["policyName"] == "TEN_SECONDLY_ROLLING"


# -- every standard object type answers (issue 16) ----------------------------------------------------------
STANDARD = ["calls", "emails", "meetings", "notes", "tasks", "tickets", "products", "line_items", "quotes",
            "leads", "deal_split", "goal_targets", "communications", "postal_mail", "feedback_submissions"]


@pytest.mark.parametrize("object_type", STANDARD)
def test_every_standard_object_answers_on_objects_search_batch_and_properties(
    hubspot: RunningSandbox, object_type: str
) -> None:
    """Issue 16: each standard object type answers on objects, search, batch, properties (v3 and v2) and
    associations v4 — empty where the portal has no such record, never 400 "Unable to infer object type"."""
    with hubspot.api() as client:
        listed = client.get(f"/crm/v3/objects/{object_type}", params={"limit": 100})
        assert listed.status_code == 200 and isinstance(listed.json()["results"], list)
        found = client.post(f"/crm/v3/objects/{object_type}/search", json={})
        assert found.status_code == 200 and found.json()["total"] >= len(found.json()["results"])
        read = client.post(f"/crm/v3/objects/{object_type}/batch/read", json={"inputs": []})
        assert read.status_code == 200 and read.json()["status"] == "COMPLETE"
        v3 = client.get(f"/crm/v3/properties/{object_type}")
        assert v3.status_code == 200
        assert {"hs_object_id", "hs_lastmodifieddate"} <= {p["name"] for p in v3.json()["results"]}
        v2 = client.get(f"/properties/v2/{object_type}/properties")
        assert v2.status_code == 200 and any(p["name"] == "hs_object_id" for p in v2.json())
        assoc = client.get(f"/crm/v4/objects/{object_type}/1/associations/contacts")
        assert assoc.status_code == 200 and assoc.json()["results"] == []


def test_sdk_on_calls_tickets_and_tasks(hubspot: RunningSandbox) -> None:
    """HubSpot's SDK creates, searches (top-level filters included) and associates calls, tickets and tasks."""
    sdk = hubspot.sdk()
    subject = f"sdk-{uuid.uuid4().hex[:8]}"
    contact = sdk.crm.contacts.basic_api.create({"properties": {"firstname": subject}})
    call = sdk.crm.objects.calls.basic_api.create(ObjectInput(properties={
        "hs_timestamp": "2026-01-05T10:00:00Z", "hs_call_title": subject, "hs_call_direction": "OUTBOUND"},
        associations=[{"to": {"id": contact.id},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]))
    ticket = sdk.crm.tickets.basic_api.create({"properties": {"subject": subject, "hs_pipeline": "0",
                                                              "hs_pipeline_stage": "1"}})
    task = sdk.crm.objects.tasks.basic_api.create(ObjectInput(properties={
        "hs_timestamp": "2026-01-05T10:00:00Z", "hs_task_subject": subject}))
    found = sdk.crm.objects.calls.search_api.do_search(ObjectsSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_call_title", "operator": "EQ", "value": subject}]}]))
    assert [r.id for r in found.results] == [call.id]
    tickets = sdk.crm.tickets.search_api.do_search(
        {"filters": [{"propertyName": "subject", "operator": "EQ", "value": subject}]})
    assert [r.id for r in tickets.results] == [ticket.id]
    tasks = sdk.crm.objects.tasks.search_api.do_search(
        {"filters": [{"propertyName": "hs_task_subject", "operator": "EQ", "value": subject}]})
    assert [r.id for r in tasks.results] == [task.id]
    linked = sdk.crm.associations.v4.basic_api.get_page("contacts", contact.id, "calls")
    assert [str(r.to_object_id) for r in linked.results] == [call.id]
    assert linked.results[0].association_types[0].type_id == 193  # contact→call, FACTS §10
    with pytest.raises(CallsApiException) as missing:
        sdk.crm.objects.calls.basic_api.create(ObjectInput(properties={"hs_call_title": "no timestamp"}))
    assert missing.value.status == 400


def test_associations_between_any_two_types_answer(hubspot: RunningSandbox) -> None:
    """contacts→contacts (449) and any pair HubSpot allows: 200, empty where none (issue 16)."""
    with hubspot.api() as client:
        made_contacts = [client.post(CONTACTS, json={"properties": {"firstname": f"pair{i}"}}) for i in range(2)]
        ids = [r.json()["id"] for r in made_contacts]
        for to in ("contacts", "tickets", "calls", "notes", "products"):
            r = client.get(f"/crm/v4/objects/contacts/{ids[0]}/associations/{to}")
            assert r.status_code == 200 and r.json()["results"] == [], (to, r.text)
        labels = client.get("/crm/v4/associations/contacts/contacts/labels").json()["results"]
        assert [label["typeId"] for label in labels] == [449]
        made = client.put(f"/crm/v4/objects/contacts/{ids[0]}/associations/default/contacts/{ids[1]}")
        assert made.status_code == 200, made.text
        back = client.get(f"/crm/v4/objects/contacts/{ids[1]}/associations/contacts").json()["results"]
        assert [(r["toObjectId"], r["associationTypes"][0]["typeId"]) for r in back] == [(int(ids[0]), 449)]
        batch = client.post("/crm/v4/associations/contacts/tickets/batch/read", json={"inputs": [{"id": ids[0]}]})
        assert batch.status_code == 200 and batch.json()["results"][0]["to"] == []
        client.delete(f"/crm/v4/objects/contacts/{ids[0]}/associations/contacts/{ids[1]}")
        assert client.get(f"/crm/v4/objects/contacts/{ids[1]}/associations/contacts").json()["results"] == []


# -- legacy pipelines (issue 16) ----------------------------------------------------------------------------
def test_legacy_pipelines_carry_created_and_updated_stamps(hubspot: RunningSandbox) -> None:
    """``/crm-pipelines/v1/pipelines/deals``: createdAt/updatedAt (epoch ms) on pipelines and stages, the
    same instants as v3's ISO stamps (FACTS §11); Airbyte's HubSpot source reads both keys."""
    with hubspot.api() as client:
        v1 = client.get("/crm-pipelines/v1/pipelines/deals").json()["results"]
        v3 = {p["id"]: p for p in client.get("/crm/v3/pipelines/deals").json()["results"]}
    assert v1
    for p in v1:
        assert isinstance(p["createdAt"], int) and isinstance(p["updatedAt"], int)
        assert p["createdAt"] == epoch_ms(v3[p["pipelineId"]]["createdAt"])
        stages = {s["id"]: s for s in v3[p["pipelineId"]]["stages"]}
        for s in p["stages"]:
            assert s["createdAt"] == epoch_ms(stages[s["stageId"]]["createdAt"])
            assert s["updatedAt"] == epoch_ms(stages[s["stageId"]]["updatedAt"])


def test_generated_tasks_and_calls_match_the_manifest(pristine_hubspot: RunningSandbox) -> None:
    """OPS-4 needs engagements: per deal's primary contact a task (open deal) or a logged call (closed deal),
    associated with that contact and the deal, read through the SDK (search with a top-level filter included)."""
    sdk = pristine_hubspot.sdk()
    with pristine_hubspot.admin() as admin:
        manifest = admin.get("/manifest").json()["crms"]["hubspot"]
        stats = admin.get("/stats").json()
    assert manifest["tasks"] > 0 and manifest["calls"] > 0
    assert stats["tasks"]["live"] == manifest["tasks"] and stats["calls"]["live"] == manifest["calls"]
    tasks = fetch_all(sdk.crm.objects.tasks.basic_api, properties=["hs_task_subject", "hs_timestamp",
                                                                   "hs_task_status", "hubspot_owner_id"])
    assert len(tasks) == manifest["tasks"]
    assert all(t.properties["hs_task_subject"] and t.properties["hs_timestamp"] for t in tasks)
    assert {t.properties["hs_task_status"] for t in tasks} == {"COMPLETED", "NOT_STARTED"}
    done = sdk.crm.objects.tasks.search_api.do_search(
        {"filters": [{"propertyName": "hs_task_status", "operator": "EQ", "value": "COMPLETED"}], "limit": 200})
    assert 0 < done.total < len(tasks)
    calls = fetch_all(sdk.crm.objects.calls.basic_api, properties=["hs_call_title", "hs_call_direction"],
                      associations=["contacts", "deals"])
    assert len(calls) == manifest["calls"]
    for call in calls[:20]:
        assert len(call.associations["contacts"].results) == 1 and len(call.associations["deals"].results) == 1
    first = tasks[0]
    contacts = sdk.crm.associations.v4.basic_api.get_page("tasks", first.id, "contacts").results
    deals = sdk.crm.associations.v4.basic_api.get_page("tasks", first.id, "deals").results
    assert [a.association_types[0].type_id for a in contacts] == [204]
    assert [a.association_types[0].type_id for a in deals] == [216]


# -- a realistic property catalogue (issue 16) --------------------------------------------------------------
@pytest.mark.parametrize(("object_type", "at_least"), [("contacts", 200), ("companies", 150), ("deals", 120)])
def test_a_new_portal_has_hundreds_of_default_properties(
    hubspot: RunningSandbox, object_type: str, at_least: int
) -> None:
    """Read through the SDK's properties client (models validated): HubSpot's defaults, typed and grouped."""
    props = hubspot.sdk().crm.properties.core_api.get_all(object_type).results
    assert len(props) >= at_least
    names = [p.name for p in props]
    assert len(names) == len(set(names))
    assert {"hs_object_id", "hs_analytics_source", "hs_all_owner_ids", "notes_last_contacted"} <= set(names)
    assert {p.group_name for p in props} >= {"analyticsinformation", "sales_properties"}
    source = next(p for p in props if p.name == "hs_analytics_source")
    assert source.type == "enumeration" and "ORGANIC_SEARCH" in {o.value for o in source.options}
    assert source.modification_metadata.read_only_value is True
    with hubspot.api() as client:
        v2 = client.get(f"/properties/v2/{object_type}/properties").json()
    assert [p["name"] for p in v2] == names


def test_reading_every_property_gives_responses_of_realistic_size(hubspot: RunningSandbox) -> None:
    """A client asking for all properties gets every name back, unset ones as null, as HubSpot answers."""
    with hubspot.api() as client:
        names = [p["name"] for p in client.get("/crm/v3/properties/contacts").json()["results"]]
        page = client.get(CONTACTS, params={"limit": 100, "properties": ",".join(names)})
        assert page.status_code == 200
        results = page.json()["results"]
        assert all(set(r["properties"]) == set(names) for r in results)
        assert len(page.content) > 100 * 4_000  # a few KB a record, as with a real portal's catalogue
        found = client.post(f"{CONTACTS}/search", json={"limit": 10, "properties": names}).json()["results"]
        assert all(len(r["properties"]) == len(names) for r in found)
        one = f"{CONTACTS}/{results[0]['id']}"
        refused = client.patch(one, json={"properties": {"hs_analytics_source": "OFFLINE"}})
        assert refused.status_code == 400 and "READ_ONLY_VALUE" in refused.text
        accepted = client.patch(one, json={"properties": {"salutation": "Dr."}})
        assert accepted.status_code == 200 and accepted.json()["properties"]["salutation"] == "Dr."


def test_inline_associations_page_past_100_and_read_as_the_v4_batch_read_does(hubspot: RunningSandbox) -> None:
    """Issue 17: a record listed with ``associations=companies`` carries at most 100 of them inline and pages the
    rest (HubSpot's v3 association pagination); a complete block reads as exactly what the v4 batch read gives,
    and a paged one is not taken (its record's associations are read in a batch instead)."""
    with hubspot.api() as client:
        many, one = [client.post(CONTACTS, json={"properties": {"firstname": f"inline{i}"}}).json()["id"]
                     for i in range(2)]
        companies = [
            r["id"]
            for start in (0, 100)
            for r in client.post("/crm/v3/objects/companies/batch/create", json={
                "inputs": [{"properties": {"name": f"inline co {i}"}} for i in range(start, min(start + 100, 101))]
            }).json()["results"]
        ]
        for chunk in (companies[:100], companies[100:]):
            made = client.post("/crm/v4/associations/contacts/companies/batch/associate/default",
                               json={"inputs": [{"from": {"id": many}, "to": {"id": c}} for c in chunk]})
            assert made.status_code in (200, 201), made.text
        client.put(f"/crm/v4/objects/contacts/{one}/associations/default/companies/{companies[0]}").raise_for_status()
        listed = {
            contact: client.get(f"{CONTACTS}/{contact}", params={"associations": "companies"}).json()["associations"]
            for contact in (many, one)
        }
        batch = client.post("/crm/v4/associations/contacts/companies/batch/read",
                            json={"inputs": [{"id": many}, {"id": one}]}).json()["results"]
    paged = listed[many]["companies"]
    assert len(paged["results"]) == 100 and paged["paging"]["next"]["after"]
    assert inline_targets(listed[many], "contacts", "companies") is None
    by_v4 = {r["from"]["id"]: r["to"] for r in batch}
    assert len(by_v4[many]) == 101
    assert inline_targets(listed[one], "contacts", "companies") == by_v4[one]
    assert inline_targets({}, "contacts", "companies") == []
    # a user-defined label is named by its label in v3, which no table turns into its type id
    labelled = {"companies": {"results": [{"id": "7", "type": "facilitator"}]}}
    assert inline_targets(labelled, "contacts", "companies") is None

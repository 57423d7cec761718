"""Issue 13: the HubSpot sandbox's portal has the custom property ``crm_pipelines_key`` on companies, deals and
tasks, as its admin would have made it for crm_pipelines (a created record is found again by it after a
crash), and archives a custom property through the properties API as HubSpot does (DELETE, the recycle bin).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubspot.crm.companies import SimplePublicObjectInputForCreate

from crm_pipelines.sandbox.hubspot.catalog import ADMIN_PROPERTIES, LOOKUP_KEY_PROPERTY
from crm_pipelines.sandbox.hubspot.portal import Portal
from crm_pipelines.sandbox.hubspot.store import HubSpotStore
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

KEY = LOOKUP_KEY_PROPERTY


@pytest.mark.parametrize(("object_type", "unique"), [("companies", True), ("deals", True), ("tasks", False)])
def test_the_key_property_is_a_custom_single_line_text(hubspot: RunningSandbox, object_type: str,
                                                       unique: bool) -> None:
    """Issue 13: read through HubSpot's SDK (its models validate the body): custom, archivable, a string shown
    as single-line text; unique values where HubSpot offers them (companies, deals), listed in v3 and v2."""
    core = hubspot.sdk().crm.properties.core_api
    prop = core.get_by_name(object_type, KEY)
    assert (prop.name, prop.type, prop.field_type) == (KEY, "string", "text")
    assert prop.hubspot_defined is False and prop.has_unique_value is unique and prop.archived is False
    assert prop.modification_metadata.archivable is True and prop.modification_metadata.read_only_value is False
    assert KEY in {p.name for p in core.get_all(object_type).results}
    with hubspot.api() as client:
        v2 = {p["name"]: p for p in client.get(f"/properties/v2/{object_type}/properties").json()}
    assert v2[KEY]["hubspotDefined"] is False and v2[KEY]["hasUniqueValue"] is unique


def test_a_record_is_found_again_by_its_key(hubspot: RunningSandbox) -> None:
    """Issue 13: a company and a task created with a key are found by a search `IN` filter on it (lower-case
    values, as HubSpot's index wants for strings); the company, its key unique, also by `idProperty`."""
    key = f"k-{uuid.uuid4().hex}"
    sdk = hubspot.sdk()
    company = sdk.crm.companies.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"name": "Keyed Inc", KEY: key}))
    with hubspot.api() as client:
        task = client.post("/crm/v3/objects/tasks", json={"properties": {
            "hs_timestamp": "2025-01-01T00:00:00Z", "hs_task_subject": "Keyed", KEY: key}})
        assert task.status_code == 201, task.text
        for object_type, made in (("companies", company.id), ("tasks", task.json()["id"])):
            found = client.post(f"/crm/v3/objects/{object_type}/search", json={
                "filterGroups": [{"filters": [{"propertyName": KEY, "operator": "IN", "values": [key, "other"]}]}],
                "properties": [KEY]})
            assert [(r["id"], r["properties"][KEY]) for r in found.json()["results"]] == [(made, key)]
        by_key = client.get(f"/crm/v3/objects/companies/{key}", params={"idProperty": KEY, "properties": KEY})
        assert by_key.json()["id"] == company.id


@pytest.fixture
def own_hubspot(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox of its own: archiving a property of the shared one would take it from every other test."""
    sandbox = start_sandbox(tmp_path / "hubspot", scale=200)
    yield sandbox
    sandbox.stop()


def test_delete_archives_a_custom_property(own_hubspot: RunningSandbox) -> None:
    """Issue 13: DELETE /crm/v3/properties/deals/crm_pipelines_key answers 204 and moves it to the recycle bin:
    gone from reads, listings and writes, shown with `archived=true`; its name stays taken; HubSpot's own
    properties cannot be archived."""
    with own_hubspot.api() as client:
        assert client.delete(f"/crm/v3/properties/deals/{KEY}").status_code == 204
        gone = client.get(f"/crm/v3/properties/deals/{KEY}")
        assert gone.status_code == 404 and gone.json()["category"] == "OBJECT_NOT_FOUND"
        assert KEY not in {p["name"] for p in client.get("/crm/v3/properties/deals").json()["results"]}
        binned = client.get(f"/crm/v3/properties/deals/{KEY}", params={"archived": "true"}).json()
        assert binned["archived"] is True and binned["archivedAt"]
        assert [p["name"] for p in client.get("/crm/v3/properties/deals", params={"archived": "true"}).json()[
            "results"]] == [KEY]
        write = client.post("/crm/v3/objects/deals", json={"properties": {"dealname": "D", KEY: "k"}})
        assert write.status_code == 400 and "PROPERTY_DOESNT_EXIST" in write.json()["message"]
        again = client.post("/crm/v3/properties/deals", json={
            "name": KEY, "label": "again", "type": "string", "fieldType": "text", "groupName": "dealinformation"})
        assert again.status_code == 409
        assert client.delete("/crm/v3/properties/deals/dealname").status_code == 400
        assert client.delete("/crm/v3/properties/deals/no_such_property").status_code == 404
        # the other objects keep theirs
        assert client.get(f"/crm/v3/properties/companies/{KEY}").status_code == 200


def test_an_archived_admin_property_stays_archived_when_the_portal_opens_again(tmp_path: Path) -> None:
    """Issue 13: the sandbox adds its admin's properties to a data directory that lacks them (one seeded
    before they existed) but never brings back one archived since."""
    store = HubSpotStore(tmp_path / "hubspot.sqlite3")
    for object_type, definition in ADMIN_PROPERTIES.items():
        store.add_custom_property(object_type, KEY, definition)
    portal = Portal(store)
    portal.archive_property("tasks", KEY)
    for object_type, definition in ADMIN_PROPERTIES.items():
        store.add_custom_property(object_type, KEY, definition)
    assert KEY not in portal.properties("tasks") and KEY in portal.archived_properties("tasks")
    assert KEY in portal.properties("companies")
    store.close()

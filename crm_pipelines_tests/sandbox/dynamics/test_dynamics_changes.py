"""Change tracking: Prefer odata.track-changes, delta links, deleted entities (FACTS §G)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

GUID = re.compile(r"\(([0-9a-f-]{36})\)$")


def initial_sync(client, path: str, select: str, page_size: int = 5000) -> tuple[list[dict], str]:
    rows: list[dict] = []
    r = client.get(path, params={"$select": select},
                   headers={"Prefer": f"odata.track-changes,odata.maxpagesize={page_size}"})
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["value"]
        if "@odata.deltaLink" in body:
            assert r.headers["Preference-Applied"] == "odata.track-changes"
            return rows, body["@odata.deltaLink"]
        r = client.get(body["@odata.nextLink"], headers={"Prefer": f"odata.maxpagesize={page_size}"})


def test_delta_link_returns_changes_then_deletions(pristine_dynamics: RunningSandbox) -> None:
    sandbox = pristine_dynamics
    with api(sandbox) as client:
        rows, delta = initial_sync(client, "contacts", "fullname,jobtitle", page_size=40)
        with sandbox.admin() as admin:
            assert len(rows) == admin.get("/stats").json()["contacts"]["live"]
        token = parse_qs(urlsplit(delta).query)["$deltatoken"][0]
        assert re.fullmatch(r"\d+!\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", token)  # <version>!<MM/dd/yyyy HH:mm:ss>
        assert delta.startswith(f"{sandbox.base_url}/api/data/v9.2/contacts?") and "$select=fullname" in delta

        nothing = client.get(delta).json()
        assert nothing["value"] == [] and nothing["@odata.context"].endswith("/$delta")

        new_id = GUID.search(client.post("contacts", json={"lastname": "Delta"}).headers["OData-EntityId"]).group(1)
        changed, deleted = rows[0]["contactid"], rows[1]["contactid"]
        client.patch(f"contacts({changed})", json={"jobtitle": "Changed"}, headers={"If-Match": "*"})
        client.delete(f"contacts({deleted})")
        with sandbox.admin() as admin:  # a person edits a record in the UI
            ui = admin.patch(f"/ui/contacts/{rows[2]['contactid']}", json={"jobtitle": "Edited in UI"})
            assert ui.status_code == 200, ui.text

        r = client.get(delta)
        body = r.json()
        values = body["value"]
        upserts = [v for v in values if "contactid" in v]
        removals = [v for v in values if v.get("reason") == "deleted"]
        assert {v["contactid"] for v in upserts} == {new_id, changed, rows[2]["contactid"]}
        assert values.index(removals[0]) == len(values) - 1  # new/updated before deleted (FACTS §G)
        assert removals == [{"@odata.context": f"{sandbox.base_url}/api/data/v9.2/$metadata#contacts/$deletedEntity",
                             "id": deleted, "reason": "deleted"}]
        assert {v["jobtitle"] for v in upserts if v["contactid"] == changed} == {"Changed"}
        assert set(upserts[0]) == {"@odata.etag", "fullname", "jobtitle", "contactid"}

        # The new delta link starts after those changes.
        assert client.get(body["@odata.deltaLink"]).json()["value"] == []


def test_delta_pages_when_many_changed(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        _, delta = initial_sync(client, "accounts", "name")
        for i in range(5):
            client.post("accounts", json={"name": f"Delta page {i}"})
        r = client.get(delta, headers={"Prefer": "odata.maxpagesize=2"})
        names, pages = [], 0
        while True:
            body = r.json()
            pages += 1
            names += [v["name"] for v in body["value"]]
            if "@odata.deltaLink" in body:
                break
            r = client.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"})
    assert names == [f"Delta page {i}" for i in range(5)] and pages == 3


def test_track_changes_rejects_filter_and_bad_tokens(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        r = client.get("contacts", params={"$filter": "statecode eq 0"}, headers={"Prefer": "odata.track-changes"})
        assert r.status_code == 400
        assert r.json()["error"]["message"] == (
            "The \"$filter\" query parameter isn't supported when Change Tracking is enabled.")
        old = client.get("contacts", params={"$deltatoken": "5!01/01/2020 00:00:00"})
        assert old.status_code == 400 and "expired" in old.json()["error"]["message"]
        assert client.get("contacts", params={"$deltatoken": "garbage"}).status_code == 400


def test_ui_creates_and_deletes_show_in_the_delta(dynamics: RunningSandbox) -> None:
    """A person working in Dynamics' UI (admin routes) is seen by a sync through change tracking."""
    with api(dynamics) as client:
        _, delta = initial_sync(client, "leads", "subject,statecode")
        with dynamics.admin() as admin:
            created = admin.post("/ui/leads", json={"subject": "From the UI", "lastname": "Ui"})
            assert created.status_code == 201
            lead_id = created.json()["leadid"]
            assert created.json()["statuscode"] == 1
            # The new lead has a random GUID and may sort first; the one deleted must be another.
            doomed = client.get("leads", params={
                "$top": "1", "$filter": f"statecode eq 0 and leadid ne {lead_id}"}).json()["value"][0]
            assert admin.delete(f"/ui/leads/{doomed['leadid']}").status_code == 204
            assert admin.delete("/ui/leads/00000000-0000-0000-0000-0000000000cc").status_code == 404
            assert admin.post("/ui/nosuch", json={}).status_code == 404
        values = client.get(delta).json()["value"]
    assert [v.get("leadid") or v["id"] for v in values] == [lead_id, doomed["leadid"]]
    assert values[1]["reason"] == "deleted"


def test_a_row_recreated_under_its_id_is_not_reported_deleted(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        record = GUID.search(client.post("contacts", json={"lastname": "Phoenix"}).headers["OData-EntityId"]).group(1)
        _, delta = initial_sync(client, "contacts", "lastname")
        client.delete(f"contacts({record})")
        client.patch(f"contacts({record})", json={"lastname": "Phoenix again"})  # upsert re-creates the id
        values = client.get(delta).json()["value"]
    assert values == [{"@odata.etag": values[0]["@odata.etag"], "lastname": "Phoenix again", "contactid": record}]

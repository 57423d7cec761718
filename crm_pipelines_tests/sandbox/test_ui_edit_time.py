"""A person's edit made at a given time (``?at=`` on ``/__sandbox__/ui``, ``crm_pipelines/sandbox/clock.py``): the
CRMs' modification times (and HubSpot's property history) say that time, as the conflict rules' tests need
(CONF-1/2: two edits minutes apart); the next edit without it is stamped now again; a time in the future or
without an offset is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(
        tmp_path_factory.mktemp("ui-at") / "sandbox", "--only", "salesforce", "--salesforce-port", "0", "--only",
        "dynamics", "--dynamics-port", "0", scale=100, seed=3,
    )  # fmt: skip
    yield sandbox
    sandbox.stop()


def _ui(sandbox: RunningSandbox, crm: str) -> httpx.Client:
    return httpx.Client(base_url=f"{sandbox.info[crm]['base_url']}/__sandbox__/ui", verify=sandbox.verify, timeout=30)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))


def _past(minutes: float) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0)


def test_a_hubspot_ui_edit_at_a_past_time_is_stamped_then_in_record_and_property_history(
    sandboxes: RunningSandbox,
) -> None:
    at = _past(10)
    with _ui(sandboxes, "hubspot") as ui, sandboxes.api() as api:
        # a seeded contact, last modified months ago
        contact = api.get("/crm/v3/objects/contacts", params={"limit": 1}).json()["results"][0]["id"]
        edited = ui.patch(f"/contacts/{contact}", json={"properties": {"firstname": "Then"}},
                          params={"at": at.isoformat()})  # fmt: skip
        assert edited.status_code == 200 and _parse(edited.json()["updatedAt"]) == at
        read = api.get(f"/crm/v3/objects/contacts/{contact}",
                       params={"properties": "lastmodifieddate", "propertiesWithHistory": "firstname"}).json()
        assert _parse(read["properties"]["lastmodifieddate"]) == at
        latest = read["propertiesWithHistory"]["firstname"][0]
        assert (latest["value"], _parse(latest["timestamp"]), latest["sourceType"]) == ("Then", at, "CRM_UI")
        # the next edit, without ``at``, is stamped now: the time given held for its own request only
        again = ui.patch(f"/contacts/{contact}", json={"properties": {"firstname": "Now"}})
        assert _parse(again.json()["updatedAt"]) > datetime.now(UTC) - timedelta(seconds=30)


def test_conf2_an_imported_value_keeps_its_time_when_another_property_of_its_record_changes(
    sandboxes: RunningSandbox,
) -> None:
    """The merge reads when a HubSpot property last changed from its history (CONF-1/CONF-2): an imported first
    name must not look changed when the sync (or a person) writes the record's phone."""
    with _ui(sandboxes, "hubspot") as ui, sandboxes.api() as api:
        # a seeded contact no other test here edits (they take the first)
        contact = api.get("/crm/v3/objects/contacts", params={"limit": 10}).json()["results"][-1]["id"]
        before = api.get(f"/crm/v3/objects/contacts/{contact}", params={"propertiesWithHistory": "firstname"}).json()
        imported = _parse(before["propertiesWithHistory"]["firstname"][0]["timestamp"])
        assert imported < datetime.now(UTC) - timedelta(days=1)
        ui.patch(f"/contacts/{contact}", json={"properties": {"phone": "+1 555 0100"}}).raise_for_status()
        after = api.get(f"/crm/v3/objects/contacts/{contact}", params={"propertiesWithHistory": "firstname,phone"})
        history = after.json()["propertiesWithHistory"]
        assert [_parse(e["timestamp"]) for e in history["firstname"]] == [imported]
        assert _parse(history["phone"][0]["timestamp"]) > datetime.now(UTC) - timedelta(seconds=30)


def test_a_salesforce_ui_edit_at_a_past_time_is_stamped_then(sandboxes: RunningSandbox) -> None:
    at = _past(12)
    with _ui(sandboxes, "salesforce") as ui:
        # created at a past time too: an edit is never dated before the record's last modification
        created = ui.post("/Contact", json={"LastName": "Attime"}, params={"at": _past(30).isoformat()}).json()
        assert _parse(created["CreatedDate"]) == _parse(created["LastModifiedDate"]) < at
        contact = created["Id"]
        body = ui.patch(f"/Contact/{contact}", json={"FirstName": "Then"}, params={"at": at.isoformat()}).json()
        assert _parse(body["LastModifiedDate"]) == at and _parse(body["SystemModstamp"]) == at
        again = ui.patch(f"/Contact/{contact}", json={"FirstName": "Now"}).json()
        assert _parse(again["LastModifiedDate"]) > datetime.now(UTC) - timedelta(seconds=30)


def test_a_dynamics_ui_edit_at_a_past_time_is_stamped_then(sandboxes: RunningSandbox) -> None:
    at = _past(14)
    with _ui(sandboxes, "dynamics") as ui:
        created = ui.post("/contacts", json={"lastname": "Attime"}, params={"at": _past(30).isoformat()}).json()
        assert _parse(created["createdon"]) == _parse(created["modifiedon"]) < at
        contact = created["contactid"]
        body = ui.patch(f"/contacts/{contact}", json={"firstname": "Then"}, params={"at": at.isoformat()}).json()
        assert _parse(body["modifiedon"]) == at
        again = ui.patch(f"/contacts/{contact}", json={"firstname": "Now"}).json()
        assert _parse(again["modifiedon"]) > datetime.now(UTC) - timedelta(seconds=30)


@pytest.mark.parametrize("crm,path,body", [
    ("hubspot", "/contacts", {"properties": {"email": "future@example.org"}}),
    ("salesforce", "/Contact", {"LastName": "Future"}),
    ("dynamics", "/contacts", {"lastname": "Future"}),
])  # fmt: skip
def test_an_edit_in_the_future_or_without_an_offset_is_refused(
    sandboxes: RunningSandbox, crm: str, path: str, body: dict
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with _ui(sandboxes, crm) as ui:
        refused = ui.post(path, json=body, params={"at": later})
        assert refused.status_code == 400 and "in the future" in refused.text
        naive = ui.post(path, json=body, params={"at": "2026-01-01T10:00:00"})
        assert naive.status_code == 400 and "no UTC offset" in naive.text


@pytest.mark.parametrize("crm,path,body,key,edit", [
    ("hubspot", "/contacts", {"properties": {"email": "recent@example.org"}}, "id",
     {"properties": {"firstname": "Earlier"}}),
    ("salesforce", "/Contact", {"LastName": "Recent"}, "Id", {"FirstName": "Earlier"}),
    ("dynamics", "/contacts", {"lastname": "Recent"}, "contactid", {"firstname": "Earlier"}),
])  # fmt: skip
def test_an_edit_before_the_records_last_modification_is_refused(
    sandboxes: RunningSandbox, crm: str, path: str, body: dict, key: str, edit: dict
) -> None:
    """A CRM's modification time never moves backwards: rather than stamping the edit at another time than
    asked, the sandbox says why it cannot."""
    with _ui(sandboxes, crm) as ui:
        made = ui.post(path, json=body)
        made.raise_for_status()
        refused = ui.patch(f"{path}/{made.json()[key]}", json=edit, params={"at": _past(60).isoformat()})
        assert refused.status_code == 400 and "before the record's last modification" in refused.text

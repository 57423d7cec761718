"""ROLL-1: the HubSpot sandbox keeps HubSpot's own calculated deal rollups on contacts (SPEC "Contact rollups"):
computed from its deals, associations and pipelines, recomputed after every deal or association change, served
by reads, search and the properties catalogue, and read-only with HubSpot's error (docs/hubspot_rollups.md).

Driven over HTTP with HubSpot's own SDK (client-side validation on) where it has the call; the expected
figures are computed here, independently, from what the API itself returns."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from hubspot.crm.contacts import ApiException, SimplePublicObjectInput
from hubspot.utils.objects import fetch_all

from crm_pipelines_tests.sandbox.conftest import RunningSandbox

ROLLUPS = ("num_associated_deals", "first_deal_created_date", "recent_deal_close_date", "recent_deal_amount",
           "total_revenue")  # fmt: skip


def _ts(value: str | None) -> dt.datetime | None:
    return None if value in (None, "") else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _expected(api: httpx.Client, contact_ids: list[str]) -> dict[str, dict]:
    """SPEC's rollup table per contact, straight from the API: the contact's live deals (v4 associations),
    their create dates, close dates, amounts and stages, won when the stage's pipeline metadata says closed
    with probability 1. A contact without a deal has none of the five."""
    pipelines = api.get("/crm/v3/pipelines/deals").json()["results"]
    won = {(p["id"], s["id"]) for p in pipelines for s in p["stages"]
           if s["metadata"]["isClosed"] == "true" and float(s["metadata"]["probability"]) == 1.0}  # fmt: skip
    links: dict[str, set[str]] = {}
    for start in range(0, len(contact_ids), 1000):
        body = {"inputs": [{"id": i} for i in contact_ids[start : start + 1000]]}
        for r in api.post("/crm/v4/associations/contacts/deals/batch/read", json=body).json()["results"]:
            links[r["from"]["id"]] = {str(t["toObjectId"]) for t in r["to"]}
    deal_ids = sorted(set().union(*links.values())) if links else []
    deals = {}
    for start in range(0, len(deal_ids), 100):
        body = {"inputs": [{"id": i} for i in deal_ids[start : start + 100]],
                "properties": ["amount", "closedate", "pipeline", "dealstage", "createdate"]}  # fmt: skip
        got = api.post("/crm/v3/objects/deals/batch/read", json=body)
        for d in got.json()["results"]:  # archived deals are missing here: only live deals count
            deals[d["id"]] = d
    out = {}
    for contact in contact_ids:
        mine = [deals[d] for d in links.get(contact, ()) if d in deals]
        if not mine:
            out[contact] = dict.fromkeys(ROLLUPS)
            continue
        wins = [d for d in mine if (d["properties"]["pipeline"], d["properties"]["dealstage"]) in won]
        amount = lambda d: None if d["properties"]["amount"] is None else float(d["properties"]["amount"])  # noqa: E731
        by_close = sorted((d for d in wins if d["properties"]["closedate"]),
                          key=lambda d: (_ts(d["properties"]["closedate"]), int(d["id"])))  # fmt: skip
        by_created = sorted(wins, key=lambda d: (_ts(d["createdAt"]), int(d["id"])))
        amounts = [a for d in wins if (a := amount(d)) is not None]
        out[contact] = {
            "num_associated_deals": len(mine),
            "first_deal_created_date": min(_ts(d["createdAt"]) for d in mine),
            "recent_deal_close_date": _ts(by_close[-1]["properties"]["closedate"]) if by_close else None,
            "recent_deal_amount": amount(by_created[-1]) if by_created else None,
            "total_revenue": sum(amounts) if amounts else None,
        }
    return out


def _served(properties: dict) -> dict:
    n, amount, total = (properties.get(k) for k in ("num_associated_deals", "recent_deal_amount", "total_revenue"))
    return {
        "num_associated_deals": None if n is None else int(n),
        "first_deal_created_date": _ts(properties.get("first_deal_created_date")),
        "recent_deal_close_date": _ts(properties.get("recent_deal_close_date")),
        "recent_deal_amount": None if amount is None else float(amount),
        "total_revenue": None if total is None else float(total),
    }


def _assert_equal(served: dict[str, dict], expected: dict[str, dict]) -> None:
    wrong = {c: (served[c], expected[c]) for c in expected
             if {k: v for k, v in served[c].items() if k != "total_revenue"}
             != {k: v for k, v in expected[c].items() if k != "total_revenue"}
             or (served[c]["total_revenue"] is None) != (expected[c]["total_revenue"] is None)
             or abs((served[c]["total_revenue"] or 0) - (expected[c]["total_revenue"] or 0)) > 1e-6}  # fmt: skip
    assert not wrong, f"{len(wrong)} contacts differ, e.g. {next(iter(wrong.items()))}"


def test_roll_1_sandbox_rollups_equal_an_independent_computation(pristine_hubspot: RunningSandbox) -> None:
    """ROLL-1: every contact's five rollups as seeded, then after a person moves a deal to closed won and
    changes its amount, a deal is created with a contact through the API, a deal is deleted and an association
    removed: equal to SPEC's definitions computed here from the API, recomputed for exactly the contacts
    touched, whose modification time moves (so an incremental read sees them)."""
    hubspot = pristine_hubspot
    contacts_api = hubspot.sdk().crm.contacts.basic_api
    contacts = {c.id: c for c in fetch_all(contacts_api, properties=list(ROLLUPS))}
    with hubspot.api() as api:
        expected = _expected(api, sorted(contacts))
    _assert_equal({c: _served(contacts[c].properties) for c in contacts}, expected)
    with_deals = [c for c in sorted(contacts) if expected[c]["num_associated_deals"]]
    assert len(with_deals) > 50 and any(e["total_revenue"] for e in expected.values())
    # seed 004 / SPEC: the most recently *created* closed-won deal's amount, not the most recently closed one's
    assert any(e["recent_deal_amount"] is not None and e["total_revenue"] != e["recent_deal_amount"]
               for e in expected.values())  # fmt: skip

    with hubspot.api() as api:
        touched: set[str] = set()
        pick = with_deals[:4]
        linked = {c: [str(r["toObjectId"]) for r in
                      api.get(f"/crm/v4/objects/contacts/{c}/associations/deals").json()["results"]] for c in pick}
        # a person moves a deal to closed won with a new amount (UI endpoint, as in HubSpot's UI)
        deal = linked[pick[0]][0]
        ui = httpx.Client(base_url=f"{hubspot.base_url}/__sandbox__/ui", timeout=30)
        ui.patch(f"/deals/{deal}", json={"properties": {"pipeline": "default", "dealstage": "closedwon",
                                                        "amount": "4321.5"}}).raise_for_status()  # fmt: skip
        touched |= {str(r["toObjectId"]) for r in
                    api.get(f"/crm/v4/objects/deals/{deal}/associations/contacts").json()["results"]}
        # a new deal with a contact, through the API
        created = api.post("/crm/v3/objects/deals", json={
            "properties": {"dealname": "Rollup test", "amount": "1000", "pipeline": "default",
                           "dealstage": "closedwon", "closedate": "2031-01-01T00:00:00Z"},
            "associations": [{"to": {"id": pick[1]}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]})  # fmt: skip
        assert created.status_code == 201, created.text
        touched.add(pick[1])
        # a deal deleted; an association removed
        gone = linked[pick[2]][0]
        touched |= {str(r["toObjectId"]) for r in
                    api.get(f"/crm/v4/objects/deals/{gone}/associations/contacts").json()["results"]}
        assert api.delete(f"/crm/v3/objects/deals/{gone}").status_code == 204
        assert api.delete(f"/crm/v4/objects/contacts/{pick[3]}/associations/deals/{linked[pick[3]][0]}"
                          ).status_code == 204  # fmt: skip
        touched.add(pick[3])
        after = {c.id: c for c in fetch_all(contacts_api, properties=list(ROLLUPS))}
        expected_after = _expected(api, sorted(after))
    _assert_equal({c: _served(after[c].properties) for c in after}, expected_after)
    moved = {c for c in after if after[c].updated_at != contacts[c].updated_at}
    assert moved == {c for c in touched if expected_after[c] != expected[c]}
    assert after[pick[1]].properties["total_revenue"] is not None
    assert _served(after[pick[1]].properties)["recent_deal_close_date"] == dt.datetime(2031, 1, 1, tzinfo=dt.UTC)


def test_roll_1_rollups_are_served_by_search_and_history(pristine_hubspot: RunningSandbox) -> None:
    """ROLL-1: the calculated values filter and sort in search like any number property, and their history
    says HubSpot's calculation set them."""
    with pristine_hubspot.api() as api:
        body = {"filterGroups": [{"filters": [{"propertyName": "total_revenue", "operator": "GT", "value": "0"}]}],
                "sorts": [{"propertyName": "total_revenue", "direction": "DESCENDING"}],
                "properties": ["total_revenue"], "limit": 100}  # fmt: skip
        found = api.post("/crm/v3/objects/contacts/search", json=body).json()
        values = [float(r["properties"]["total_revenue"]) for r in found["results"]]
        assert found["total"] > 0 and values == sorted(values, reverse=True) and min(values) > 0
        contact = found["results"][0]["id"]
        deal = api.get(f"/crm/v4/objects/contacts/{contact}/associations/deals").json()["results"][0]["toObjectId"]
        api.patch(f"/crm/v3/objects/deals/{deal}", json={"properties": {"pipeline": "default",
                                                                        "dealstage": "closedwon",
                                                                        "amount": "999999"}}).raise_for_status()
        history = api.get(f"/crm/v3/objects/contacts/{contact}",
                          params={"propertiesWithHistory": "total_revenue"}).json()["propertiesWithHistory"]
    assert history["total_revenue"][0]["sourceType"] == "CALCULATED"
    assert float(history["total_revenue"][0]["value"]) > values[0]


def test_roll_1_properties_catalogue_marks_rollups_calculated_and_read_only(hubspot: RunningSandbox) -> None:
    """ROLL-1: the five contact properties are HubSpot-defined, calculated and read-only (FACTS §12)."""
    core = hubspot.sdk().crm.properties.core_api
    for name in ROLLUPS:
        p = core.get_by_name("contacts", name)
        assert p.calculated is True and p.hubspot_defined is True, name
        assert p.modification_metadata.read_only_value is True, name
        assert p.form_field is False, name


@pytest.mark.parametrize("prop", ROLLUPS)
def test_roll_1_sandbox_refuses_a_write_to_a_calculated_rollup_with_hubspots_error(
    hubspot: RunningSandbox, prop: str
) -> None:
    """ROLL-1: HubSpot's answer to a write of a read-only value: 400 VALIDATION_ERROR, "Property values were not
    valid: " with the JSON list naming the property, ``READ_ONLY_VALUE`` and HubSpot's wording, and ``errors[]``
    repeating it with ``context.propertyName`` (docs/hubspot_rollups.md); nothing is written."""
    sdk = hubspot.sdk().crm.contacts.basic_api
    contact = sdk.get_page(limit=1, properties=[prop]).results[0]
    with pytest.raises(ApiException) as err:
        sdk.update(contact.id, SimplePublicObjectInput(properties={prop: "7", "firstname": "Rollup"}))
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"] == err.value.headers["X-HubSpot-Correlation-Id"]
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    message = f'"{prop}" is a calculated property; its value cannot be set.'
    assert json.loads(body["message"][len(prefix):]) == [
        {"isValid": False, "message": message, "error": "READ_ONLY_VALUE", "name": prop,
         "localizedErrorMessage": message}]  # fmt: skip
    assert body["errors"] == [{"message": message, "code": "READ_ONLY_VALUE", "context": {"propertyName": [prop]}}]
    # nothing of the request was applied, the valid firstname included
    again = sdk.get_by_id(contact.id, properties=[prop, "firstname"])
    assert again.properties[prop] == contact.properties[prop] and again.updated_at == contact.updated_at
    with hubspot.api() as api:  # batch update and create refuse it the same way
        batch = api.post("/crm/v3/objects/contacts/batch/update",
                         json={"inputs": [{"id": contact.id, "properties": {prop: "7"}}]})  # fmt: skip
        assert batch.status_code == 400 and batch.json()["errors"][0]["code"] == "READ_ONLY_VALUE"
        create = api.post("/crm/v3/objects/contacts", json={"properties": {prop: "7"}})
        assert create.status_code == 400 and create.json()["errors"][0]["context"] == {"propertyName": [prop]}

"""DEAL-4 / issue 13: Dataverse closes an opportunity by WinOpportunity / LoseOpportunity, never by a value.

The actions set statecode/statuscode, actualclosedate and actualvalue, take a new version (change tracking and
``modifiedon`` windows see the close), refuse a closed or missing opportunity with the platform's errors, and
run inside ``$batch`` change sets; a plain write of Won or Lost is refused as the platform refuses it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api
from crm_pipelines_tests.sandbox.dynamics.test_dynamics_batch import changeset, part, responses, send
from crm_pipelines_tests.sandbox.dynamics.test_dynamics_changes import initial_sync

GUID = re.compile(r"\(([0-9a-f-]{36})\)$")
ALREADY_CLOSED = "0x80040515"  # OpportunityIsAlreadyClosed
SET_STATE_REFUSED = "0x80100005"  # CannotUseOpportunitySetStateMessage
SELECT = "statecode,statuscode,actualvalue,actualclosedate,estimatedvalue,modifiedon,versionnumber"


def new_opportunity(client, **values: object) -> str:
    r = client.post("opportunities", json={"name": f"Deal {uuid.uuid4().hex[:8]}", **values})
    assert r.status_code == 204, r.text
    return GUID.search(r.headers["OData-EntityId"]).group(1)


def close_body(opportunity_id: str, status: int, **activity: object) -> dict:
    return {"Status": status, "OpportunityClose": {
        "subject": "Closed by a test", "opportunityid@odata.bind": f"/opportunities({opportunity_id})", **activity}}


def row(client, opportunity_id: str) -> dict:
    r = client.get(f"opportunities({opportunity_id})", params={"$select": SELECT})
    assert r.status_code == 200, r.text
    return r.json()


def test_deal4_win_opportunity_closes_it_and_reads_see_the_change(dynamics: RunningSandbox) -> None:
    """DEAL-4 / issue 13: WinOpportunity answers 204 and leaves the opportunity Won, with the close activity's
    revenue and date; its new version reaches a delta link and a ``modifiedon`` window."""
    with api(dynamics) as client:
        opportunity = new_opportunity(client, estimatedvalue=5000)
        _, delta = initial_sync(client, "opportunities", "name,statecode")
        before = row(client, opportunity)
        won = client.post("WinOpportunity", json=close_body(opportunity, 3, actualrevenue=4321.5,
                                                            actualend="2026-01-15"))
        assert won.status_code == 204 and won.content == b"", won.text
        after = row(client, opportunity)
        assert (after["statecode"], after["statuscode"]) == (1, 3)
        assert after["actualvalue"] == 4321.5 and after["actualclosedate"] == "2026-01-15"
        assert after["estimatedvalue"] == 5000
        assert int(after["versionnumber"]) > int(before["versionnumber"])
        assert after["modifiedon"] >= before["modifiedon"]
        changed = client.get(delta).json()["value"]
        assert [(v["opportunityid"], v["statecode"]) for v in changed if v.get("opportunityid") == opportunity] == [
            (opportunity, 1)]
        window = client.get("opportunities", params={
            "$select": "statecode", "$filter": f"modifiedon ge {before['modifiedon']} and statecode eq 1"}).json()
        assert opportunity in {v["opportunityid"] for v in window["value"]}


def test_deal4_default_status_revenue_and_close_date(dynamics: RunningSandbox) -> None:
    """DEAL-4: Status -1 takes the state's default status (Won 3, Lost/Canceled 4); without actualrevenue a won
    opportunity's actual value defaults to its estimate and a lost one keeps none; without actualend the close
    date is today."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    with api(dynamics) as client:
        winning, losing, outsold = (new_opportunity(client, estimatedvalue=700) for _ in range(3))
        assert client.post("WinOpportunity", json=close_body(winning, -1)).status_code == 204
        assert client.post("LoseOpportunity", json=close_body(losing, -1)).status_code == 204
        assert client.post("LoseOpportunity", json=close_body(outsold, 5, actualrevenue=0)).status_code == 204
        won, lost, out = row(client, winning), row(client, losing), row(client, outsold)
    assert (won["statecode"], won["statuscode"], won["actualvalue"]) == (1, 3, 700)
    assert (lost["statecode"], lost["statuscode"], lost["actualvalue"]) == (2, 4, None)
    assert (out["statecode"], out["statuscode"], out["actualvalue"]) == (2, 5, 0)
    assert {won["actualclosedate"], lost["actualclosedate"], out["actualclosedate"]} <= {
        today, (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).date().isoformat()}


def test_deal4_closed_missing_or_malformed_closes_are_refused(dynamics: RunningSandbox) -> None:
    """DEAL-4: an opportunity already closed cannot be won or lost again until it is reopened
    (OpportunityIsAlreadyClosed, row untouched); a missing one is not found; a status of the other state or a
    payload the action does not declare is refused."""
    with api(dynamics) as client:
        opportunity = new_opportunity(client, estimatedvalue=10)
        assert client.post("LoseOpportunity", json=close_body(opportunity, 4)).status_code == 204
        closed = row(client, opportunity)
        for action, status in (("WinOpportunity", 3), ("LoseOpportunity", 5)):
            again = client.post(action, json=close_body(opportunity, status))
            assert again.status_code == 400
            assert again.json() == {"error": {"code": ALREADY_CLOSED, "message": "The opportunity is already closed."}}
        assert row(client, opportunity) == closed

        # reopening is a plain update; then the opportunity can be won
        assert client.patch(f"opportunities({opportunity})", json={"statecode": 0},
                            headers={"If-Match": "*"}).status_code == 204
        assert (row(client, opportunity)["statecode"], row(client, opportunity)["statuscode"]) == (0, 1)
        assert client.post("WinOpportunity", json=close_body(opportunity, 3)).status_code == 204

        missing = str(uuid.uuid4())
        gone = client.post("WinOpportunity", json=close_body(missing, 3))
        assert gone.status_code == 404
        assert gone.json()["error"] == {"code": "0x80040217",
                                        "message": f"opportunity With Id = {missing} Does Not Exist"}

        other = new_opportunity(client)
        wrong_state = client.post("WinOpportunity", json=close_body(other, 4))
        assert wrong_state.status_code == 400 and wrong_state.json()["error"]["code"] == "0x80048408"
        bad = [
            {"Status": 3},  # no OpportunityClose
            {"OpportunityClose": close_body(other, 3)["OpportunityClose"]},  # no Status
            {**close_body(other, 3), "Reason": "x"},  # not a parameter of the action
            close_body(other, 3, nosuchcolumn=1),  # not a property of opportunityclose
            close_body(other, "3"),  # Status is an Edm.Int32
            {"Status": 3, "OpportunityClose": {"subject": "no opportunity"}},
            {"Status": 3, "OpportunityClose": {"opportunityid@odata.bind": f"/accounts({other})"}},
        ]
        for body in bad:
            r = client.post("WinOpportunity", json=body)
            assert r.status_code == 400 and r.json()["error"]["code"].startswith("0x"), (body, r.text)
        assert row(client, other)["statecode"] == 0
        assert client.get("WinOpportunity").status_code == 404  # an action is POSTed


def test_deal4_a_plain_write_of_won_or_lost_is_refused(dynamics: RunningSandbox) -> None:
    """DEAL-4: as in Dataverse, statecode/statuscode of Won or Lost cannot be written by create, update or a
    single-property PUT (CannotUseOpportunitySetStateMessage); the row keeps its version."""
    with api(dynamics, **{"If-Match": "*"}) as client:
        opportunity = new_opportunity(client)
        before = row(client, opportunity)
        attempts = [
            client.patch(f"opportunities({opportunity})", json={"statecode": 1, "statuscode": 3}),
            client.patch(f"opportunities({opportunity})", json={"statuscode": 5}),  # implies Lost
            client.patch(f"opportunities({opportunity})", json={"statecode": 2, "name": "and a name"}),
            client.put(f"opportunities({opportunity})/statecode", json={"value": 1}),
        ]
        for r in attempts:
            assert r.status_code == 400 and r.json()["error"]["code"] == SET_STATE_REFUSED, r.text
        assert attempts[0].json()["error"]["message"] == (
            "This message can not be used to set the state of opportunity to won. In order to set state of "
            "opportunity to won, use the won message instead.")
        assert row(client, opportunity) == before
        created = client.post("opportunities", json={"name": "Born won", "statecode": 1})
        assert created.status_code == 400 and created.json()["error"]["code"] == SET_STATE_REFUSED
        # open states stay plain updates
        assert client.patch(f"opportunities({opportunity})", json={"statuscode": 2}).status_code == 204
        assert (row(client, opportunity)["statecode"], row(client, opportunity)["statuscode"]) == (0, 2)
        # other tables keep their plain state changes
        contact = GUID.search(client.post("contacts", json={"lastname": "x"}).headers["OData-EntityId"]).group(1)
        assert client.patch(f"contacts({contact})", json={"statecode": 1}).status_code == 204


def test_deal4_close_actions_inside_batch_change_sets(dynamics: RunningSandbox) -> None:
    """DEAL-4: the actions run in ``$batch`` change sets, may name an opportunity created earlier in the same
    change set (``$1``), and a refused close rolls back its own change set only."""
    tag = uuid.uuid4().hex[:8]
    root = f"{dynamics.base_url}/api/data/v9.2/"
    with api(dynamics) as client:
        closed = new_opportunity(client)
        assert client.post("WinOpportunity", json=close_body(closed, 3)).status_code == 204
        open_one = new_opportunity(client)
        r = send(client, [
            changeset([
                part("POST", root + "opportunities", {"name": f"Born {tag}", "estimatedvalue": 99}, 1),
                part("POST", root + "WinOpportunity", {"Status": 3, "OpportunityClose": {
                    "subject": "won in a batch", "opportunityid@odata.bind": "$1"}}, 2),
            ]),
            changeset([
                part("PATCH", root + f"opportunities({closed})", {"description": f"rolled back {tag}"}, 3,
                     headers={"If-Match": "*"}),
                part("POST", root + "LoseOpportunity", close_body(closed, 4), 4),
            ]),
            changeset([part("POST", root + "LoseOpportunity", close_body(open_one, 5), 5)]),
        ], Prefer="odata.continue-on-error")
        answers = responses(r)
        assert [s for s, _ in answers] == [204, 204, 400, 204]
        assert json.loads(answers[2][1])["error"]["code"] == ALREADY_CLOSED
        born = client.get("opportunities", params={"$select": SELECT, "$filter": f"name eq 'Born {tag}'"})
        (born_row,) = born.json()["value"]
        assert (born_row["statecode"], born_row["statuscode"], born_row["actualvalue"]) == (1, 3, 99)
        assert client.get(f"opportunities({closed})", params={"$select": "description"}).json()["description"] is None
        assert (row(client, open_one)["statecode"], row(client, open_one)["statuscode"]) == (2, 5)

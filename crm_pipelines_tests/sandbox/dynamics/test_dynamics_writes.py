"""Writes on the wire: create, update, upsert with If-Match / If-None-Match, @odata.bind, delete (FACTS §D, §E)."""

from __future__ import annotations

import re
import uuid

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

GUID = re.compile(r"\(([0-9a-f-]{36})\)$")


def test_create_answers_204_with_odata_entityid(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        r = client.post("accounts", json={"name": "Contoso Ltd", "revenue": 1000.5, "numberofemployees": 12})
        assert r.status_code == 204 and r.content == b""
        entity = r.headers["OData-EntityId"]
        assert entity.startswith(f"{dynamics.base_url}/api/data/v9.2/accounts(")
        account_id = GUID.search(entity).group(1)
        row = client.get(f"accounts({account_id})").json()
        assert row["name"] == "Contoso Ltd" and row["revenue"] == 1000.5 and row["numberofemployees"] == 12
        assert (row["statecode"], row["statuscode"]) == (0, 1)
        assert row["createdon"] == row["modifiedon"] and row["createdon"].endswith("Z")
        assert row["_ownerid_value"]  # new rows belong to the calling user
        again = client.post("accounts", json={"accountid": account_id, "name": "Same id"})
        assert again.status_code == 400 and again.json()["error"]["code"] == "0x80040237"


def test_create_with_return_representation_is_201(dynamics: RunningSandbox) -> None:
    """FACTS §D: Prefer: return=representation gives 201 and the entity (with $select applied)."""
    with api(dynamics, Prefer="return=representation") as client:
        r = client.post("contacts", params={"$select": "fullname,emailaddress1"},
                        json={"firstname": "Zoë", "lastname": "Dubois", "emailaddress1": "zoe@example.fr"})
    assert r.status_code == 201
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#contacts(fullname,emailaddress1)/$entity")
    assert body["fullname"] == "Zoë Dubois" and body["@odata.etag"].startswith('W/"')
    assert r.headers["OData-EntityId"].endswith(f"({body['contactid']})")


def test_bind_lookups_and_read_them_back(dynamics: RunningSandbox) -> None:
    """FACTS §D: `<nav>@odata.bind` sets the lookup; it reads back as `_<name>_value`."""
    with api(dynamics) as client:
        account = GUID.search(client.post("accounts", json={"name": "Bind Co"}).headers["OData-EntityId"]).group(1)
        r = client.post("contacts", json={"lastname": "Bound", "parentcustomerid_account@odata.bind":
                                          f"/accounts({account})"})
        contact = GUID.search(r.headers["OData-EntityId"]).group(1)
        row = client.get(f"contacts({contact})", params={"$select": "_parentcustomerid_value"},
                         headers={"Prefer": 'odata.include-annotations="*"'}).json()
        assert row["_parentcustomerid_value"] == account
        assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
        assert row["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Bind Co"
        missing = client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind":
                                                "/accounts(00000000-0000-0000-0000-0000000000aa)"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80040217"
        direct = client.post("contacts", json={"lastname": "x", "_parentcustomerid_value": account})
        assert direct.status_code == 400


def test_payload_validation(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        unknown = client.post("contacts", json={"lastname": "x", "nosuch": 1})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["message"] == (
            "Invalid property 'nosuch' was found in entity 'Microsoft.Dynamics.CRM.contact'.")
        assert client.post("leads", json={"leadsourcecode": 99}).status_code == 400
        assert client.post("contacts", json={"firstname": "x" * 51}).status_code == 400
        assert client.post("accounts", json={"numberofemployees": "many"}).status_code == 400
        bad_status = client.post("leads", json={"lastname": "x", "statecode": 0, "statuscode": 3})
        assert bad_status.status_code == 400 and bad_status.json()["error"]["code"] == "0x80048408"


def test_patch_upsert_and_conditions(dynamics: RunningSandbox) -> None:
    """FACTS §D: PATCH without If-Match creates; If-Match: * only updates; If-None-Match: * only creates."""
    new_id = str(uuid.uuid4())
    with api(dynamics) as client:
        created = client.patch(f"contacts({new_id})", json={"lastname": "Upserted"})
        assert created.status_code == 204
        assert created.headers["OData-EntityId"].endswith(f"contacts({new_id})")
        row = client.get(f"contacts({new_id})").json()
        assert row["lastname"] == "Upserted"

        only_create = client.patch(f"contacts({new_id})", json={"lastname": "Again"}, headers={"If-None-Match": "*"})
        assert only_create.status_code == 412 and only_create.json()["error"]["code"] == "0x80040237"

        other = str(uuid.uuid4())
        only_update = client.patch(f"contacts({other})", json={"lastname": "Nope"}, headers={"If-Match": "*"})
        assert only_update.status_code == 404 and only_update.json()["error"]["code"] == "0x80040217"
        assert client.get(f"contacts({other})").status_code == 404

        # Optimistic concurrency with the row's ETag.
        stale = row["@odata.etag"]
        assert client.patch(f"contacts({new_id})", json={"jobtitle": "A"}, headers={"If-Match": stale}).status_code \
            == 204
        conflict = client.patch(f"contacts({new_id})", json={"jobtitle": "B"}, headers={"If-Match": stale})
        assert conflict.status_code == 412 and conflict.json()["error"]["code"] == "0x80060882"
        fresh = client.get(f"contacts({new_id})")
        assert fresh.json()["jobtitle"] == "A" and fresh.headers["ETag"] == fresh.json()["@odata.etag"]
        unchanged = client.get(f"contacts({new_id})", headers={"If-None-Match": fresh.headers["ETag"]})
        assert unchanged.status_code == 304

        updated = client.patch(f"contacts({new_id})", json={"jobtitle": "C"},
                               headers={"If-Match": "*", "Prefer": "return=representation"})
        assert updated.status_code == 200 and updated.json()["jobtitle"] == "C"


def test_upsert_by_alternate_key_sets_the_key(dynamics: RunningSandbox) -> None:
    number = f"ACC-T{uuid.uuid4().hex[:6]}"
    with api(dynamics) as client:
        r = client.patch(f"accounts(accountnumber='{number}')", json={"name": "Keyed"})
        assert r.status_code == 204
        row = client.get(f"accounts(accountnumber='{number}')").json()
        assert row["name"] == "Keyed" and row["accountnumber"] == number
        client.patch(f"accounts(accountnumber='{number}')", json={"name": "Keyed 2"})
        assert client.get("accounts", params={"$filter": f"accountnumber eq '{number}'"}).json()["value"][0][
            "name"] == "Keyed 2"
        not_a_key = client.patch("accounts(name='Keyed 2')", json={"name": "x"})
        assert not_a_key.status_code == 400


def test_delete_and_single_property_writes(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        contact = GUID.search(client.post("contacts", json={"lastname": "Gone", "jobtitle": "CTO"})
                              .headers["OData-EntityId"]).group(1)
        assert client.put(f"contacts({contact})/jobtitle", json={"value": "CIO"}).status_code == 204
        assert client.get(f"contacts({contact})/jobtitle").json()["value"] == "CIO"
        assert client.delete(f"contacts({contact})/jobtitle").status_code == 204
        assert client.get(f"contacts({contact})").json()["jobtitle"] is None
        assert client.delete(f"contacts({contact})").status_code == 204
        again = client.delete(f"contacts({contact})")
        assert again.status_code == 404 and again.json()["error"]["message"] == (
            f"contact With Id = {contact} Does Not Exist")

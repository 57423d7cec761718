"""Metadata: the SDK's EntityDefinitions look-ups (FACTS §A4-5) and what schema-discovery tools read (issue 4)."""

from __future__ import annotations

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api


def test_entity_set_resolution_as_the_sdk_sends_it(dynamics: RunningSandbox) -> None:
    """FACTS §A4: %24-encoded keys and `+` spaces, exactly as requests encodes params."""
    with api(dynamics) as client:
        r = client.get("EntityDefinitions?%24select=LogicalName%2CEntitySetName%2CPrimaryIdAttribute"
                       "&%24filter=LogicalName+eq+%27opportunity%27")
        assert r.status_code == 200
        assert r.json()["value"] == [{"@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
                                      "MetadataId": r.json()["value"][0]["MetadataId"], "LogicalName": "opportunity",
                                      "EntitySetName": "opportunities", "PrimaryIdAttribute": "opportunityid"}]
        none = client.get("EntityDefinitions", params={"$filter": "LogicalName eq 'contacts'"})
        assert none.json()["value"] == []


def test_picklist_metadata_as_the_sdk_reads_it(dynamics: RunningSandbox) -> None:
    """FACTS §A5: literal URL with a cast segment and $expand=OptionSet($select=Options)."""
    with api(dynamics) as client:
        r = client.get("EntityDefinitions(LogicalName='opportunity')/Attributes/"
                       "Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName"
                       "&$expand=OptionSet($select=Options)")
    assert r.status_code == 200
    by_name = {a["LogicalName"]: a for a in r.json()["value"]}
    assert set(by_name) == {"salesstage", "opportunityratingcode"}
    options = by_name["salesstage"]["OptionSet"]["Options"]
    assert [(o["Value"], o["Label"]["LocalizedLabels"][0]["Label"]) for o in options] == [
        (0, "Qualify"), (1, "Develop"), (2, "Propose"), (3, "Close")]
    assert options[0]["Label"]["LocalizedLabels"][0]["LanguageCode"] == 1033


def test_schema_discovery_listing_with_attributes_and_change_tracking(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        r = client.get("EntityDefinitions", params={
            "$select": "LogicalName,EntitySetName,ChangeTrackingEnabled,CanChangeTrackingBeEnabled",
            "$expand": "Attributes($select=LogicalName,AttributeType)"})
        tables = {t["LogicalName"]: t for t in r.json()["value"]}
        assert set(tables) == {"contact", "lead", "account", "opportunity", "systemuser"}
        contact = tables["contact"]
        assert contact["ChangeTrackingEnabled"] is True
        assert contact["CanChangeTrackingBeEnabled"]["Value"] is True
        types = {a["LogicalName"]: a["AttributeType"] for a in contact["Attributes"]}
        assert types["contactid"] == "Uniqueidentifier" and types["emailaddress1"] == "String"
        assert types["parentcustomerid"] == "Customer" and types["modifiedon"] == "DateTime"
        assert types["statecode"] == "State" and types["statuscode"] == "Status"

        dates = client.get("EntityDefinitions(LogicalName='opportunity')/Attributes/"
                           "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
                           params={"$select": "LogicalName,DateTimeBehavior"}).json()["value"]
        behaviours = {d["LogicalName"]: d["DateTimeBehavior"]["Value"] for d in dates}
        assert behaviours == {"createdon": "UserLocal", "modifiedon": "UserLocal",
                              "estimatedclosedate": "DateOnly", "actualclosedate": "DateOnly"}

        one = client.get("EntityDefinitions(LogicalName='lead')", params={"$select": "PrimaryNameAttribute"})
        assert one.json()["PrimaryNameAttribute"] == "fullname"
        assert one.json()["@odata.context"].endswith("$metadata#EntityDefinitions/$entity")
        keys = client.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"]
        assert keys[0]["KeyAttributes"] == ["accountnumber"]
        status = client.get("EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='statuscode')",
                            params={"$expand": "OptionSet"}).json()
        assert {(o["Value"], o["State"]) for o in status["OptionSet"]["Options"]} >= {(1, 0), (3, 1), (4, 2)}
        assert client.get("EntityDefinitions(LogicalName='nosuch')").status_code == 404


def test_service_document_and_csdl(dynamics: RunningSandbox) -> None:
    with api(dynamics) as client:
        doc = client.get("").json()
        assert {v["name"] for v in doc["value"]} == {"contacts", "leads", "accounts", "opportunities",
                                                     "systemusers"}
        csdl = client.get("$metadata")
        assert csdl.headers["Content-Type"].startswith("application/xml")
        assert '<EntitySet Name="contacts" EntityType="Microsoft.Dynamics.CRM.contact"/>' in csdl.text
        who = client.get("WhoAmI").json()
        assert who["UserId"] and who["@odata.context"].endswith("WhoAmIResponse")

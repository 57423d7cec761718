"""Issue 13: the Dynamics sandbox's organization has the custom column ``crm_pipelines_key`` on opportunities,
as its admin would have made it for crm_pipelines (a created opportunity is found again by it after a crash):
a String column the metadata marks custom, filterable like any other."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from PowerPlatform.Dataverse.client import DataverseClient

from crm_pipelines.sandbox.dynamics.catalog import LOOKUP_KEY_COLUMN, OPPORTUNITY
from crm_pipelines.sandbox.dynamics.csdl import csdl
from crm_pipelines.sandbox.dynamics.store import DynamicsStore
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

KEY = LOOKUP_KEY_COLUMN


def test_the_column_is_custom_in_every_metadata_view(dynamics: RunningSandbox) -> None:
    """Issue 13: EntityDefinitions by attribute key, the attribute listing (filtered on IsCustomAttribute) and
    $metadata agree: a custom String column of 100 characters; accounts have no such column."""
    with api(dynamics) as client:
        one = client.get(f"EntityDefinitions(LogicalName='opportunity')/Attributes(LogicalName='{KEY}')")
        assert one.status_code == 200
        doc = one.json()
        assert doc["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
        assert (doc["LogicalName"], doc["SchemaName"], doc["AttributeType"], doc["MaxLength"]) == (
            KEY, KEY, "String", 100)
        assert doc["IsCustomAttribute"] is True and doc["IsManaged"] is False and doc["IsValidForCreate"] is True
        custom = client.get("EntityDefinitions(LogicalName='opportunity')/Attributes",
                            params={"$select": "LogicalName", "$filter": "IsCustomAttribute eq true"}).json()
        assert [a["LogicalName"] for a in custom["value"]] == [KEY]
        missing = client.get(f"EntityDefinitions(LogicalName='account')/Attributes(LogicalName='{KEY}')")
        assert missing.status_code == 404
        metadata = client.get("$metadata")
    assert f'<Property Name="{KEY}" Type="Edm.String"/>' in metadata.text
    assert f'<Property Name="{KEY}" Type="Edm.String"/>' in csdl().split('EntityType Name="opportunity"')[1]


def test_an_opportunity_is_found_again_by_its_key(sdk: DataverseClient, dynamics: RunningSandbox) -> None:
    """Issue 13: a key written on create is read back and found by `Microsoft.Dynamics.CRM.In` and by `or`ed
    `eq` filters; a key over the column's length is refused like any String column's."""
    key = f"k-{uuid.uuid4().hex}"
    made = sdk.records.create("opportunity", {"name": "Keyed deal", KEY: key})
    with api(dynamics) as client:
        for query in (f"Microsoft.Dynamics.CRM.In(PropertyName='{KEY}',PropertyValues=[\"{key}\",\"other\"])",
                      f"{KEY} eq '{key.upper()}' or {KEY} eq 'other'"):
            rows = client.get("opportunities", params={"$select": f"opportunityid,{KEY}", "$filter": query})
            assert rows.status_code == 200, rows.text
            assert [(r["opportunityid"], r[KEY]) for r in rows.json()["value"]] == [(made, key)]
        too_long = client.post("opportunities", json={"name": "Too long", KEY: "k" * 101})
        assert too_long.status_code == 400


def test_an_older_data_directory_gains_the_column(tmp_path: Path) -> None:
    """Issue 13: a data directory made before the column existed opens with it (null in every row)."""
    path = tmp_path / "dynamics.sqlite3"
    DynamicsStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"ALTER TABLE {OPPORTUNITY.entity_set} DROP COLUMN {KEY}")
    db.close()
    store = DynamicsStore(path)
    columns = {row[1] for row in store.db.execute(f"PRAGMA table_info({OPPORTUNITY.entity_set})")}
    store.close()
    assert KEY in columns

"""DEAL-1 / CONF-6: a custom field mapping syncs fields outside the extract's standard lists, through real
Dagster runs on the three sandboxes (both state backends): the extract reads the fields the settings name, so
an edit of one in a CRM's UI is planned for the other CRM; a mapping naming a field the org lacks fails the
extract with the field's name instead of syncing nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.extract.settings_fields import settings_fields
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.extract.hubspot import PROPERTIES
from crm_pipelines.extract.salesforce import FIELDS
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror
from crm_pipelines.state.db import create_state_engine
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui, three_sandboxes  # noqa: F401 (fixture)
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

# a pair of fields neither extract reads by default: HubSpot's postal code, Salesforce's other address's
MAPPING = {"hubspot": "zip", "other": "OtherPostalCode", "object": "Contact"}


def _settings(tmp_path: Path, sandbox: RunningSandbox, state_url: str, mappings: list[dict]) -> Path:
    return sandbox_settings(tmp_path / "crm_pipelines.yaml", sandbox, state_url,
                            sync={"salesforce": {"field_mappings": mappings}})


def test_deal_1_a_custom_mapping_of_fields_outside_the_standard_lists_is_extracted_and_planned(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance  # noqa: F811
) -> None:
    assert MAPPING["hubspot"] not in PROPERTIES["contacts"] and MAPPING["other"] not in FIELDS["Contact"]
    sandbox = three_sandboxes
    settings_path = _settings(tmp_path, sandbox, state_url, [MAPPING])
    settings = load_settings(settings_path)
    assert settings_fields(settings) == {("salesforce", "Contact"): ("OtherPostalCode",),
                                         ("hubspot", "contacts"): ("zip",)}
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    extract = build_extract_assets(settings)
    backfill(instance, settings, extract, resources)
    assert dg.materialize([build_unified_assets(settings)], instance=instance, resources=resources).success
    engine = create_state_engine(state_url)

    links = link_store.load(engine, kind="contact")
    pairs = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].sort_values("hubspot_id")
    (hs_a, sf_a), (hs_b, sf_b) = [(str(r.hubspot_id), str(r.salesforce_id)) for r in pairs.head(2).itertuples()]
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Contact/{sf_a}", json={"OtherPostalCode": "10115"}).raise_for_status()
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_b}", json={"properties": {"zip": "80331"}}).raise_for_status()

    sync_changes(settings, extract, instance, resources)
    assert dg.materialize([build_unified_assets(settings)], instance=instance, resources=resources).success

    stored = mirror.read_records(engine, "salesforce", "Contact").set_index("id")
    assert stored.loc[sf_a, "OtherPostalCode"] == "10115"  # the mirror holds the named field
    plans = build_plans(engine, settings)
    to_hubspot = plans["hubspot"].updates.set_index(["record_id", "field"])
    assert to_hubspot.loc[(hs_a, "zip"), "new"] == "10115"
    to_salesforce = plans["salesforce"].updates.set_index(["record_id", "field"])
    assert to_salesforce.loc[(sf_b, "zip"), "new"] == "80331"


def test_deal_1_a_mapping_naming_a_field_the_org_lacks_fails_the_extract_naming_it(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance  # noqa: F811
) -> None:
    sandbox = three_sandboxes
    settings_path = _settings(tmp_path, sandbox, state_url,
                              [{"hubspot": "zip", "other": "Shoe_Size__c", "object": "Contact"}])
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    extract = build_extract_assets(settings)
    salesforce = next(a for a in extract if dg.AssetKey(["salesforce", "Contact"]) in a.keys)
    partition = daily_partitions(settings.extract).get_last_partition_key()
    with pytest.raises(Exception, match="Contact has no field Shoe_Size__c"):
        dg.materialize([salesforce], selection=[dg.AssetKey(["salesforce", "Contact"])], instance=instance,
                       resources=resources, partition_key=partition)

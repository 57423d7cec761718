"""DEAL-1 / CONF-6: a custom field mapping syncs fields outside the extract's standard lists, through real
Dagster runs on the three sandboxes (both state backends): the extract reads the fields the settings name, so
an edit of one in a CRM's UI is planned for the other CRM; a mapping naming a field the org lacks fails the
extract with the field's name instead of syncing nothing."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest

from crm_pipelines.defs.extract.settings_fields import settings_fields
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.extract.hubspot import PROPERTIES
from crm_pipelines.extract.salesforce import FIELDS
from crm_pipelines.state import links as link_store
from crm_pipelines.state import mirror
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_unified_incremental import _ui

# a pair of fields neither extract reads by default: HubSpot's postal code, Salesforce's other address's
MAPPING = {"hubspot": "zip", "other": "OtherPostalCode", "object": "Contact"}


def test_deal_1_a_custom_mapping_of_fields_outside_the_standard_lists_is_extracted_and_planned(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    assert MAPPING["hubspot"] not in PROPERTIES["contacts"] and MAPPING["other"] not in FIELDS["Contact"]
    runs = three_sandbox_runs(run_backfill=False, sync={"salesforce": {"field_mappings": [MAPPING]}})
    sandbox, settings = runs.sandbox, runs.settings
    assert settings_fields(settings) == {("salesforce", "Contact"): ("OtherPostalCode",),
                                         ("hubspot", "contacts"): ("zip",)}
    runs.backfill()
    runs.unify()
    engine = runs.engine

    links = link_store.load(engine, kind="contact")
    pairs = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].sort_values("hubspot_id")
    (hs_a, sf_a), (hs_b, sf_b) = [(str(r.hubspot_id), str(r.salesforce_id)) for r in pairs.head(2).itertuples()]
    with _ui(sandbox, "salesforce") as ui:
        ui.patch(f"/Contact/{sf_a}", json={"OtherPostalCode": "10115"}).raise_for_status()
    with _ui(sandbox, "hubspot") as ui:
        ui.patch(f"/contacts/{hs_b}", json={"properties": {"zip": "80331"}}).raise_for_status()

    runs.sync_changes()
    runs.unify()

    stored = mirror.read_records(engine, "salesforce", "Contact").set_index("id")
    assert stored.loc[sf_a, "OtherPostalCode"] == "10115"  # the mirror holds the named field
    plans = build_plans(engine, settings)
    to_hubspot = plans["hubspot"].updates.set_index(["record_id", "field"])
    assert to_hubspot.loc[(hs_a, "zip"), "new"] == "10115"
    to_salesforce = plans["salesforce"].updates.set_index(["record_id", "field"])
    assert to_salesforce.loc[(sf_b, "zip"), "new"] == "80331"


def test_deal_1_a_mapping_naming_a_field_the_org_lacks_fails_the_extract_naming_it(
    three_sandbox_runs: Callable[..., SandboxRuns],
) -> None:
    runs = three_sandbox_runs(run_backfill=False, sync={"salesforce": {"field_mappings": [
        {"hubspot": "zip", "other": "Shoe_Size__c", "object": "Contact"}]}})  # fmt: skip
    salesforce = next(a for a in runs.extract if dg.AssetKey(["salesforce", "Contact"]) in a.keys)
    partition = daily_partitions(runs.settings.extract).get_last_partition_key()
    with pytest.raises(Exception, match="Contact has no field Shoe_Size__c"):
        dg.materialize([salesforce], selection=[dg.AssetKey(["salesforce", "Contact"])], instance=runs.instance,
                       resources=runs.resources, partition_key=partition)

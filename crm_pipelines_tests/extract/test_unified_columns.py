"""A full ``unified`` run reads only the mirror fields the transform declares (``transform/columns.py``,
issue 11: memory); the result is the same, table for table, as from every field of every record, on the
three sandboxes' extracted mirrors with custom field mappings (DEAL-1), on both state backends."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.mirrors import load_mirrors, transform_settings
from crm_pipelines.defs.unified.update import result_tables
from crm_pipelines.settings import load_settings
from crm_pipelines.state import links as link_store
from crm_pipelines.state import unified
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.transform.columns import mirror_columns
from crm_pipelines.transform.pipeline import run_transform
from crm_pipelines_tests.extract.test_extract import backfill
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

_CUSTOM = {
    "salesforce": [{"hubspot": "jobtitle", "other": "Title", "object": "Contact"},
                   {"hubspot": "leadsource", "other": "LeadSource", "object": "Lead", "type": "picklist",
                    "value_map": {"Web": "web"}}],
    "dynamics": [{"hubspot": "jobtitle", "other": "jobtitle", "object": "contacts"}],
}


def test_full_result_is_the_same_from_the_declared_fields_only(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    sandbox = three_sandboxes
    settings_path = tmp_path / "crm_pipelines.yaml"
    settings_path.write_text(yaml.safe_dump({
        "state_database_url": state_url,
        "sandbox": {"data_dir": str(sandbox.data_dir)},
        "extract": {"partitions_per_run": 30, "start_date": (date.today() - timedelta(days=20)).isoformat()},
        "sync": {crm: {"field_mappings": maps} for crm, maps in _CUSTOM.items()},
    }))
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    backfill(instance, settings, build_extract_assets(settings), resources)
    engine = create_state_engine(state_url)
    current = transform_settings(settings)
    links = link_store.load(engine, origin="sync")

    every_field = load_mirrors(engine)
    declared = mirror_columns(current.custom_fields)
    pruned = load_mirrors(engine, declared)
    # the declaration leaves most of the records out (else this test proves nothing)
    for key in (("salesforce", "Contact"), ("salesforce", "Lead"), ("dynamics", "contacts")):
        assert set(pruned.frames[key].columns) < set(every_field.frames[key].columns), key
        assert set(pruned.frames[key].columns) <= {"id", "modified_at", "deleted", *declared[key]}, key
    assert {"Title"} <= set(pruned.frames[("salesforce", "Contact")].columns)  # a custom mapping's source

    want = result_tables(run_transform(every_field, links, current))
    # as a full run does it: each frame dropped after its last reader
    got = result_tables(run_transform(pruned, links, current, release=True))
    assert ("hubspot", "associations") in pruned.released and ("salesforce", "Lead") in pruned.released
    assert set(got) == set(want)
    assert sum(1 for frame in want.values() if len(frame)) > 20
    for name, frame in want.items():
        assert sorted(unified.fingerprint_rows(name, got[name])) == sorted(unified.fingerprint_rows(name, frame)), name
    assert got["fields_salesforce_contact"]["values"].map(lambda v: v.get("jobtitle")).notna().any()

    # a step reading a field nobody declared, or a frame after its last reader, fails instead of seeing it empty
    with pytest.raises(KeyError, match=r"transform/columns\.py"):
        pruned.live("hubspot", "tasks", ["hs_task_subject"])
    with pytest.raises(KeyError, match="released"):
        pruned.live("salesforce", "Contact", ["Email"])


def test_declared_fields_read_as_from_whole_records(state_engine) -> None:
    """Reading only the declared fields (on PostgreSQL the server picks them out of each record, issue 11)
    gives each field as the whole record gives it: absent keys missing, explicit nulls None, JSON types kept,
    HubSpot's ``properties`` lifted; equal strings are one object (the mirror's memory)."""
    from datetime import UTC, datetime

    from crm_pipelines.state import mirror

    at = datetime(2026, 1, 1, tzinfo=UTC)
    hubspot = [{"id": str(i), "properties": {"email": f"p{i}@x.com", "country": ["France", "Peru"][i % 2],
                                             "amount": i if i % 3 else None, "other": "x" * 50}}
               for i in range(12)]  # fmt: skip
    hubspot.append({"id": "99", "properties": {"email": None}})  # no country at all, explicit null email
    salesforce = [{"Email": f"s{i}@x.com", "IsConverted": bool(i % 2), "Title": "VP", "attributes": {"a": 1}}
                  for i in range(5)]  # fmt: skip
    mirror.upsert_rows(state_engine, "hubspot", "contacts",
                       [mirror.MirrorRow(r["id"], at, r) for r in hubspot])  # fmt: skip
    mirror.upsert_rows(state_engine, "salesforce", "Lead",
                       [mirror.MirrorRow(f"00Q{i}", at, r) for i, r in enumerate(salesforce)])  # fmt: skip
    for (crm, obj), wanted in {("hubspot", "contacts"): ("email", "country", "amount", "missing"),
                               ("salesforce", "Lead"): ("Email", "IsConverted", "Country")}.items():
        picked = mirror.read_records(state_engine, crm, obj, columns=wanted)
        whole = mirror.read_records(state_engine, crm, obj)
        expected = whole[["id", "modified_at", "deleted", *[c for c in wanted if c in whole.columns]]]
        pd.testing.assert_frame_equal(picked, expected)
        for col in picked.columns:
            assert [type(v) for v in picked[col]] == [type(v) for v in expected[col]], col
    contacts = mirror.read_records(state_engine, "hubspot", "contacts", columns=("country",))
    france = [v for v in contacts["country"] if v == "France"]
    assert len(france) == 6 and all(v is france[0] for v in france)

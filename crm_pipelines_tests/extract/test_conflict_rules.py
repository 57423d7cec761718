"""The conflict rules (SPEC CONF-1..6, CON-1) end to end, one test per rule case, on both state backends.

Per backend, one set-up (module fixture): three sandboxes, a backfill and a full ``unified`` through a real
Dagster instance; for a few linked contacts whose names agree in both CRMs, the baseline a previous sync left
(``state/baselines.py``, recorded as the writes stage records it); then a person's edits in the CRMs' UIs at
chosen times (``?at=``, ``crm_pipelines/sandbox/clock.py``), each case on its own linked contact; a backfill of
the last two days reads them (a change poll reads from its cursor on, and an edit dated ten minutes ago lies
before it); ``unified`` and the plan assets run, and each test asserts its fields of the plans
(``build_plans``, what the plan assets and ``crm-pipelines plan`` show).

The settings give each rule its own field: Salesforce contacts two-way with HubSpot the default app,
``lastname`` under ``prefer_hubspot_unless_blank`` and ``phone`` under ``always_other``; Dynamics contacts
one way, HubSpot -> Dynamics, with Dynamics named the default app (CONF-4: the direction still decides),
``lastname`` under ``set_on_create_only`` and ``phone`` under ``dont_sync``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from sqlalchemy.engine import Engine

from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.defs.extract.sensors import build_change_sensor
from crm_pipelines.defs.partitions import daily_partitions
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import CONFLICTS, PLANS, build_plan_assets
from crm_pipelines.defs.writeback.plan_inputs import linked_merges
from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.defs.writeback.write_assets import WRITES, build_write_assets
from crm_pipelines.settings import Settings, load_settings
from crm_pipelines.state import baselines
from crm_pipelines.state import links as link_store
from crm_pipelines.sync import merge
from crm_pipelines_tests.extract.conftest import sandbox_runs, start_three_sandboxes
from crm_pipelines_tests.extract.test_extract import evaluate
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

# what a person edits, per CRM: HubSpot property -> the CRM's field
COLUMN = {"hubspot": {"firstname": "firstname", "lastname": "lastname", "phone": "phone"},
          "salesforce": {"firstname": "FirstName", "lastname": "LastName", "phone": "Phone"},
          "dynamics": {"firstname": "firstname", "lastname": "lastname", "phone": "telephone1"}}  # fmt: skip
PATH = {"hubspot": "/contacts/{}", "salesforce": "/Contact/{}", "dynamics": "/contacts/{}"}
# the CRMs' contact objects the edits touch
EDITED = [dg.AssetKey(["hubspot", "contacts"]), dg.AssetKey(["salesforce", "Contact"]),
          dg.AssetKey(["dynamics", "contacts"])]  # fmt: skip


@dataclass
class Case:
    """One linked contact and what was done to it."""

    hubspot_id: str
    other_crm: str
    other_id: str
    baseline: dict[str, str | None] = field(default_factory=dict)  # field -> the value last synced
    edits: dict[str, dict[str, str | None]] = field(default_factory=dict)  # crm -> field -> value set


@dataclass
class World:
    sandbox: RunningSandbox
    settings_path: Path
    settings: Settings
    engine: Engine
    instance: dg.DagsterInstance
    resources: dict
    extract: list
    unified: dg.AssetsDefinition
    plan_assets: list
    cases: dict[str, Case]
    plans: dict = field(default_factory=dict)  # target -> TargetPlan
    checks: dict = field(default_factory=dict)  # (asset key, check name) -> evaluation

    def update(self, target: str, case: Case, name: str) -> pd.Series | None:
        return _update(self.plans, target, case, name)


def _update(plans: dict, target: str, case: Case, name: str) -> pd.Series | None:
    """The planned update of ``name`` in ``target`` for ``case`` (None: none planned)."""
    record = case.hubspot_id if target == "hubspot" else case.other_id
    u = plans[target].updates
    hit = u[(u["record_id"].astype(str) == record) & (u["field"] == name)]
    assert len(hit) <= 1, hit
    return None if hit.empty else hit.iloc[0]


def _ui_edit(sandbox: RunningSandbox, crm: str, record_id: str, values: dict[str, str | None],
             at: datetime | None = None) -> None:
    """A person's edit in the CRM's UI, at ``at`` (None: now)."""
    if crm == "hubspot":
        body: dict = {"properties": {COLUMN[crm][k]: ("" if v is None else v) for k, v in values.items()}}
    else:
        body = {COLUMN[crm][k]: v for k, v in values.items()}
    params = {"at": at.isoformat()} if at else {}
    with _ui(sandbox, crm) as ui:
        ui.patch(PATH[crm].format(record_id), json=body, params=params).raise_for_status()


def _plan(world: World) -> None:
    """``unified``, then the three plan assets, through the Dagster instance; keeps the plans and checks."""
    assert dg.materialize([world.unified], instance=world.instance, resources=world.resources).success
    result = dg.materialize([world.unified, *world.plan_assets], selection=list(PLANS.values()),
                            instance=world.instance, resources=world.resources)  # fmt: skip
    assert result.success
    world.checks = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    world.plans = build_plans(world.engine, world.settings)


def _agreeing(world: World, crm: str, link_type: str, exclude: set[str]) -> list[tuple[str, str]]:
    """(HubSpot id, other id) of linked contacts, in a stable order, whose first and last names agree in both
    CRMs (so a name a test leaves alone is the one last synced) and that are linked to no third CRM (so only
    the connection under test can plan them)."""
    links = link_store.load(world.engine, kind="contact")
    third = "dynamics" if crm == "salesforce" else "salesforce"
    mine = links[(links[f"{crm}_type"] == link_type) & links[f"{crm}_id"].notna() & links["hubspot_id"].notna()
                 & links[f"{third}_id"].isna()]  # fmt: skip
    merged = linked_merges(world.engine, world.settings, "contact")[crm]
    names = merged[merged["field"].isin(["firstname", "lastname"])]
    agree = names.assign(ok=names["hubspot_value"].notna() & (names["hubspot_value"] == names["other_value"]))
    ok = agree.groupby(["hubspot_id", "other_id"])["ok"].all()
    ok = ok[ok & (agree.groupby(["hubspot_id", "other_id"]).size() == 2)]
    pairs = sorted((str(h), str(o)) for h, o in zip(mine["hubspot_id"], mine[f"{crm}_id"], strict=True)
                   if (str(h), str(o)) in ok.index and str(h) not in exclude)  # fmt: skip
    return pairs


def _values(world: World, crm: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str | None]]:
    """(HubSpot id, field) -> {"hubspot": value, "other": value}, in the merge's comparable form."""
    merged = linked_merges(world.engine, world.settings, "contact")[crm]
    wanted = merged[merged["hubspot_id"].isin([h for h, _ in pairs])]
    return {(r.hubspot_id, r.field): {"hubspot": r.hubspot_value, "other": r.other_value}
            for r in wanted.itertuples()}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_state_url: str,
          module_instance: dg.DagsterInstance) -> Iterator[World]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("conflicts")
    sandbox = start_three_sandboxes(tmp / "sandbox")
    try:
        runs = sandbox_runs(sandbox, module_instance, module_state_url, tmp / "crm_pipelines.yaml", sync={
            "salesforce": {"default_app": "hubspot", "conflict_window_minutes": 5, "field_mappings": [
                {"hubspot": "lastname", "other": "LastName", "object": "Contact",
                 "rule": "prefer_hubspot_unless_blank"},
                {"hubspot": "phone", "other": "Phone", "object": "Contact", "rule": "always_other"}]},
            "dynamics": {"default_app": "dynamics", "contacts": {"direction": "hubspot_to_other"},
                         "field_mappings": [
                {"hubspot": "lastname", "other": "lastname", "object": "contacts", "rule": "set_on_create_only"},
                {"hubspot": "phone", "other": "telephone1", "object": "contacts", "rule": "dont_sync"}]},
        })  # fmt: skip
        world = World(sandbox, runs.settings_path, runs.settings, runs.engine, module_instance, runs.resources,
                      runs.extract, runs.unified, [build_plan_assets()], {})  # fmt: skip
        _set_up_cases(world)
        yield world
    finally:
        sandbox.stop()


# -- the cases: who edits what, when ----------------------------------------------------------------------
SF_CASES = ("conflict", "latest", "blanked", "blank_winner", "one_side", "prefer", "prefer_blank", "always")
DY_CASES = ("one_way", "one_way_other_edit", "dont_sync", "create_only")


def _set_up_cases(world: World) -> None:
    sf_pairs = _agreeing(world, "salesforce", "Contact", set())
    dy_pairs = _agreeing(world, "dynamics", "contact", {h for h, _ in sf_pairs})
    assert len(sf_pairs) >= len(SF_CASES) and len(dy_pairs) >= len(DY_CASES), (len(sf_pairs), len(dy_pairs))
    cases = {name: Case(h, "salesforce", o) for name, (h, o) in zip(SF_CASES, sf_pairs, strict=False)}
    cases |= {name: Case(h, "dynamics", o) for name, (h, o) in zip(DY_CASES, dy_pairs, strict=False)}
    world.cases = cases

    # the previous sync: every case's names and phone as the other CRM holds them now (they agree on names)
    now = datetime.now(UTC)
    rows = []
    for crm in ("salesforce", "dynamics"):
        mine = [c for c in cases.values() if c.other_crm == crm]
        values = _values(world, crm, [(c.hubspot_id, c.other_id) for c in mine])
        for case in mine:
            for name in ("firstname", "lastname", "phone"):
                case.baseline[name] = values[(case.hubspot_id, name)]["other"]
                rows.append({"kind": "contact", "hubspot_id": case.hubspot_id, "other_crm": crm, "field": name,
                             "value": case.baseline[name]})  # fmt: skip
    with world.engine.begin() as conn:
        baselines.record(conn, pd.DataFrame(rows), write_id="previous sync (test set-up)", at=now - timedelta(hours=1))

    def edit(name: str, crm: str, values: dict[str, str | None], minutes_ago: float) -> None:
        case = cases[name]
        record = case.hubspot_id if crm == "hubspot" else case.other_id
        _ui_edit(world.sandbox, crm, record, values, now - timedelta(minutes=minutes_ago))
        case.edits.setdefault(crm, {}).update(values)

    # CONF-1/CONF-2: both sides edited 2 minutes apart, the other CRM last: a conflict, the default app wins
    edit("conflict", "hubspot", {"firstname": "Hubert"}, 14)
    edit("conflict", "salesforce", {"firstname": "Salvador"}, 12)
    # CONF-2: 10 minutes apart: no conflict, the later change (Salesforce's) wins
    edit("latest", "hubspot", {"firstname": "Early"}, 20)
    edit("latest", "salesforce", {"firstname": "Later"}, 10)
    # CONF-3: HubSpot's first name blanked, Salesforce's untouched
    edit("blanked", "hubspot", {"firstname": None}, 10)
    # CONF-3: a conflict the default app wins with a blank: Salesforce's new value stays
    edit("blank_winner", "hubspot", {"firstname": None}, 13)
    edit("blank_winner", "salesforce", {"firstname": "Kept"}, 12)
    # CONF-6 two-way: only Salesforce changed
    edit("one_side", "salesforce", {"firstname": "Onesided"}, 9)
    # CONF-6 prefer HubSpot unless blank: HubSpot's last name, though Salesforce's changed later
    edit("prefer", "hubspot", {"lastname": "Hubbard"}, 20)
    edit("prefer", "salesforce", {"lastname": "Salinger"}, 8)
    # ... and when HubSpot's is blank, Salesforce's
    edit("prefer_blank", "hubspot", {"lastname": None}, 8)
    # CONF-6 always Salesforce: HubSpot's phone edit is undone from Salesforce
    edit("always", "hubspot", {"phone": "+1 555 0199"}, 7)
    # CONF-4: Dynamics is one way from HubSpot and named the default app: both edited 2 minutes apart
    edit("one_way", "hubspot", {"firstname": "Hubspotter"}, 14)
    edit("one_way", "dynamics", {"firstname": "Dynamo"}, 12)
    # CONF-4: an edit in Dynamics alone never goes to HubSpot
    edit("one_way_other_edit", "dynamics", {"firstname": "Dynamicus"}, 9)
    # CONF-6 don't sync (Dynamics phone), set on create only (Dynamics last name); the first names do sync
    edit("dont_sync", "hubspot", {"firstname": "Phoebe", "phone": "+1 555 0142"}, 6)
    edit("create_only", "hubspot", {"firstname": "Cressida", "lastname": "Createonly"}, 6)

    # a backfill of the last two days' partitions reads the edits (their times may lie before the cursor)
    keys = daily_partitions(world.settings.extract).get_partition_keys(current_time=datetime.now(UTC))[-2:]
    result = dg.materialize([a for a in world.extract if a.partitions_def is not None], instance=world.instance,
                            resources=world.resources, selection=EDITED,
                            tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})
    assert result.success
    _plan(world)


# -- CONF-1 / CONF-2 ----------------------------------------------------------------------------------------
def test_conf1_conf2_both_sides_edited_two_minutes_apart_is_a_conflict_the_default_app_wins(world: World) -> None:
    case = world.cases["conflict"]
    to_sf = world.update("salesforce", case, "firstname")
    assert to_sf is not None and to_sf["new"] == "Hubert" and to_sf["old"] == "Salvador"
    assert to_sf["decided_by"] == merge.CONFLICT and bool(to_sf["conflict"])
    assert world.update("hubspot", case, "firstname") is None  # HubSpot keeps its value
    # the plan's check reports the conflict with who won
    check = world.checks[(PLANS["salesforce"], CONFLICTS)]
    assert check.metadata["count"].value >= 1
    assert "Hubert" in check.metadata["sample"].value


def test_conf2_both_sides_edited_ten_minutes_apart_the_later_change_wins(world: World) -> None:
    case = world.cases["latest"]
    to_hs = world.update("hubspot", case, "firstname")
    assert to_hs is not None and (to_hs["old"], to_hs["new"]) == ("Early", "Later")
    assert to_hs["decided_by"] == merge.LATEST and not bool(to_hs["conflict"])
    assert to_hs["source_crm"] == "salesforce" and to_hs["source_id"] == case.other_id
    assert world.update("salesforce", case, "firstname") is None


# -- CONF-3 -------------------------------------------------------------------------------------------------
def test_conf3_a_field_blanked_on_one_side_is_never_blanked_on_the_other(world: World) -> None:
    case = world.cases["blanked"]
    assert world.update("salesforce", case, "firstname") is None  # Salesforce's name is not blanked
    back = world.update("hubspot", case, "firstname")
    assert back is not None and pd.isna(back["old"]) and back["new"] == case.baseline["firstname"]
    assert back["decided_by"] == merge.NEVER_BLANK


def test_conf3_a_conflict_won_by_a_blank_keeps_the_other_sides_value(world: World) -> None:
    case = world.cases["blank_winner"]
    assert world.update("salesforce", case, "firstname") is None  # HubSpot won, but with no value
    back = world.update("hubspot", case, "firstname")
    assert back is not None and pd.isna(back["old"]) and back["new"] == "Kept"
    assert back["decided_by"] == merge.NEVER_BLANK


# -- CONF-4 -------------------------------------------------------------------------------------------------
def test_conf4_a_one_way_connection_writes_its_source_app_s_value_whatever_the_default_app(world: World) -> None:
    case = world.cases["one_way"]
    to_dy = world.update("dynamics", case, "firstname")
    # Dynamics is named the default app and changed last, but the connection is HubSpot -> Dynamics
    assert to_dy is not None and (to_dy["old"], to_dy["new"]) == ("Dynamo", "Hubspotter")
    assert to_dy["decided_by"] == merge.CONFLICT
    hs = world.plans["hubspot"].updates
    assert not (hs["source_crm"] == "dynamics").any()  # nothing ever goes from Dynamics to HubSpot


def test_conf4_an_edit_in_the_one_way_target_is_not_synced_back(world: World) -> None:
    case = world.cases["one_way_other_edit"]
    assert world.update("hubspot", case, "firstname") is None
    assert world.update("dynamics", case, "firstname") is None  # HubSpot did not change: nothing to write


# -- CONF-6 -------------------------------------------------------------------------------------------------
def test_conf6_two_way_a_change_on_one_side_moves_to_the_other(world: World) -> None:
    case = world.cases["one_side"]
    to_hs = world.update("hubspot", case, "firstname")
    assert to_hs is not None and (to_hs["old"], to_hs["new"]) == (case.baseline["firstname"], "Onesided")
    assert to_hs["decided_by"] == merge.ONE_SIDE
    assert world.update("salesforce", case, "firstname") is None


def test_conf6_prefer_hubspot_unless_blank_wins_over_a_later_change(world: World) -> None:
    case = world.cases["prefer"]
    to_sf = world.update("salesforce", case, "lastname")
    assert to_sf is not None and (to_sf["old"], to_sf["new"]) == ("Salinger", "Hubbard")
    assert to_sf["decided_by"] == f"{merge.PREFER} {merge.HUBSPOT}"
    assert world.update("hubspot", case, "lastname") is None


def test_conf6_prefer_hubspot_unless_blank_takes_the_other_value_when_hubspot_is_blank(world: World) -> None:
    case = world.cases["prefer_blank"]
    assert world.update("salesforce", case, "lastname") is None
    back = world.update("hubspot", case, "lastname")
    assert back is not None and pd.isna(back["old"]) and back["new"] == case.baseline["lastname"]
    assert back["decided_by"] == f"{merge.PREFER} {merge.HUBSPOT}: blank, so the other app's value"


def test_conf6_always_other_app_undoes_an_edit_in_hubspot(world: World) -> None:
    case = world.cases["always"]
    assert world.update("salesforce", case, "phone") is None
    back = world.update("hubspot", case, "phone")
    assert back is not None and back["new"] == case.baseline["phone"] and back["old"] == "+1 555 0199"
    assert back["decided_by"] == f"{merge.ALWAYS} {merge.OTHER}"


def test_conf6_dont_sync_is_never_planned(world: World) -> None:
    case = world.cases["dont_sync"]
    assert world.update("dynamics", case, "phone") is None
    synced = world.update("dynamics", case, "firstname")  # the same record's first name does sync
    assert synced is not None and synced["new"] == "Phoebe"


def test_conf6_set_on_create_only_never_overwrites_a_linked_record(world: World) -> None:
    case = world.cases["create_only"]
    assert world.update("dynamics", case, "lastname") is None
    synced = world.update("dynamics", case, "firstname")
    assert synced is not None and synced["new"] == "Cressida"


def test_conf2_a_conflict_is_won_by_the_default_app_the_connection_names(world: World) -> None:
    """The same state planned with Salesforce named the connection's default app (CONF-2: "HubSpot unless set
    otherwise"): the conflict goes the other way; changes 10 minutes apart are still decided by time."""
    doc = yaml.safe_load(world.settings_path.read_text())
    doc["sync"]["salesforce"]["default_app"] = "salesforce"
    path = world.settings_path.with_name("crm_pipelines.salesforce-default.yaml")
    path.write_text(yaml.safe_dump(doc))
    settings = load_settings(path)
    resources = build_resources(settings, str(path), state_url=settings.state_database_url)
    result = dg.materialize([build_unified_assets(settings), build_plan_assets()], selection=list(PLANS.values()),
                            instance=world.instance, resources=resources)  # fmt: skip
    assert result.success
    plans = build_plans(world.engine, settings)

    conflict = world.cases["conflict"]
    to_hs = _update(plans, "hubspot", conflict, "firstname")
    assert to_hs is not None and (to_hs["old"], to_hs["new"]) == ("Hubert", "Salvador")
    assert to_hs["decided_by"] == merge.CONFLICT and bool(to_hs["conflict"])
    assert _update(plans, "salesforce", conflict, "firstname") is None
    latest = _update(plans, "hubspot", world.cases["latest"], "firstname")
    assert latest is not None and latest["new"] == "Later" and latest["decided_by"] == merge.LATEST


# -- CONF-5: last, as it executes the plan ------------------------------------------------------------------
def _read_names(world: World, crm: str, record_id: str) -> dict[str, str | None]:
    """First and last name of a contact as the CRM's own API returns them."""
    async def read() -> dict[str, Any]:
        async with open_client(crm, world.settings, Secrets({})) as client:
            if crm == "salesforce":
                return (await client.call("GET", f"sobjects/Contact/{record_id}", "GET sobjects/Contact")).data
            path = f"/crm/v3/objects/contacts/{record_id}" if crm == "hubspot" else f"contacts({record_id})"
            params = {"properties": "firstname,lastname"} if crm == "hubspot" else {"$select": "firstname,lastname"}
            return (await client.api.request("GET", path, endpoint=f"GET {path}", params=params)).data

    data = asyncio.run(read())
    data = data.get("properties", data)
    return {name: data.get(COLUMN[crm][name]) or None for name in ("firstname", "lastname")}


def test_conf1_to_conf6_the_written_plan_lands_as_planned_then_the_next_plan_is_empty(world: World) -> None:
    """The write assets execute the plans (issue 13): every planned update of the cases' edited names is what
    the target CRM's API then returns, and every name no rule moved is as the person left it (CONF-3: never
    blanked; CONF-4/CONF-6: not written). The change sensor's runs read the writes back, and the next plan
    holds nothing for those fields between the two CRMs of each case: the values the sync wrote are no user
    change (CONF-5)."""
    _plan(world)  # the plans of this module's settings (the test above planned with other ones)
    edited = {(c.hubspot_id, f) for c in world.cases.values() for edits in c.edits.values() for f in edits}
    result = dg.materialize([world.unified, *world.plan_assets, *build_write_assets()],
                            selection=list(WRITES.values()), instance=world.instance, resources=world.resources)
    assert result.success
    written = 0
    for name, case in world.cases.items():
        for crm, record in (("hubspot", case.hubspot_id), (case.other_crm, case.other_id)):
            now = _read_names(world, crm, record)
            for field_name in ("firstname", "lastname"):
                planned = world.update(crm, case, field_name)
                if planned is not None and (case.hubspot_id, field_name) in edited:
                    assert now[field_name] == planned["new"], (name, crm, field_name)
                    written += 1
                elif crm in case.edits and field_name in case.edits[crm]:
                    assert now[field_name] == case.edits[crm][field_name], (name, crm, field_name)
    assert written >= 8

    # Dynamics stamps ``modifiedon`` in whole seconds: a poll within the second of a write would see it only
    # on its next tick
    time.sleep(1.1)
    sensor = build_change_sensor(world.settings, daily_partitions(world.settings.extract))
    requests = evaluate(sensor, world.instance, world.resources).run_requests
    assert {k for r in requests for k in r.asset_selection} >= set(EDITED)
    for request in requests:
        run = dg.materialize(world.extract, selection=request.asset_selection, instance=world.instance,
                             resources=world.resources, partition_key=request.partition_key, tags=request.tags)
        assert run.success
    _plan(world)
    # within each case's connection (the writes also created the cases' contacts in the third CRM, with the
    # values of the plan they were made from: the hub carries the new ones there next, a hop of its own)
    crms = {c.hubspot_id: {"hubspot", c.other_crm} for c in world.cases.values()}
    left = [(t, r.record_id, r.field, r.old, r.new, r.decided_by) for t, plan in world.plans.items()
            for r in plan.updates.itertuples()
            if r.kind == "contact" and (str(r.hubspot_id), r.field) in edited and t in crms[str(r.hubspot_id)]]
    assert left == []
    assert world.checks[(PLANS["salesforce"], CONFLICTS)].metadata["count"].value == 0

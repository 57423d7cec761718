"""Write-back of contacts (issue 13) end to end, on both state backends, through real Dagster runs on the
three sandboxes: a situation made in one CRM's UI is, after extract -> ``unified`` -> plan -> writes, present
in the others as the rule says, read back through the CRMs' own APIs; a converged sync then writes nothing
(CONF-5); a record the CRM refuses fails alone and is kept to retry (OPS-6); a create whose run died after the
call is found in the CRM, not made twice (Invariant 1)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml

from crm_pipelines.crm.connections import Secrets, open_client
from crm_pipelines.crm.errors import NotFoundError
from crm_pipelines.defs.extract import sensors
from crm_pipelines.defs.extract.assets import build_extract_assets
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.unified.assets import build_unified_assets
from crm_pipelines.defs.writeback.assets import PLANS, build_plan_assets
from crm_pipelines.defs.writeback.write_assets import FAILED_WRITES, WRITES, build_write_assets
from crm_pipelines.settings import load_settings
from crm_pipelines.state import baselines, mirror, outbox
from crm_pipelines.state import links as link_store
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.db import create_state_engine
from crm_pipelines.state.schema import write_outbox
from crm_pipelines_tests.extract.test_extract import backfill, sandbox_settings, sync_changes
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.extract.test_writeback_plan_deletions import _link_deals, _unique_email_links
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

NEW_EMAIL = "new.person@example.org"


def _find(settings, crm: str, obj: str, field: str, values: list[str]) -> dict[str, str]:
    async def run() -> dict[str, str]:
        async with open_client(crm, settings, Secrets({})) as client:
            return await client.find(obj, field, values)

    return asyncio.run(run())


def _get(settings, crm: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    """A record as the CRM's API returns it."""
    async def run() -> dict[str, Any]:
        async with open_client(crm, settings, Secrets({})) as client:
            if crm == "salesforce":
                return (await client.call("GET", path, f"GET {path}", params=params)).data
            return (await client.api.request("GET", path, endpoint=f"GET {path}", params=params)).data

    return asyncio.run(run())


def _write_run(world) -> dict[dg.AssetKey, dict]:
    """``unified``, the plans and the writes, as the automation runs them; each write asset's metadata."""
    instance, resources = world["instance"], world["resources"]
    assert dg.materialize([world["unified"]], instance=instance, resources=resources).success
    result = dg.materialize([world["unified"], world["plans"], *world["writes"]],
                            selection=[*PLANS.values(), *WRITES.values()], instance=instance, resources=resources)
    assert result.success
    world["checks"] = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    return {e.asset_key: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if e.asset_key in WRITES.values()}


def _cycle(world) -> int:
    """The change sensor's extracts, then ``unified``, the plans and the writes; the writes' calls and records."""
    sync_changes(world["settings"], world["extract"], world["instance"], world["resources"])
    return sum(m["created"] + m["updated"] + m["deleted"] + m["api_calls"] for m in _write_run(world).values())


def _converge(world, most: int = 3) -> int:
    """Cycles until one writes nothing (at most ``most``); how many wrote something."""
    for cycles in range(most + 1):
        if not _cycle(world):
            return cycles
    raise AssertionError("the sync did not converge")


def _world(tmp_path: Path, sandbox: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
           **sections) -> dict:
    settings_path = sandbox_settings(tmp_path / "crm_pipelines.yaml", sandbox, state_url, **sections)
    settings = load_settings(settings_path)
    resources = build_resources(settings, str(settings_path), state_url=state_url)
    world = {"settings": settings, "resources": resources, "instance": instance,
             "extract": build_extract_assets(settings), "unified": build_unified_assets(settings),
             "plans": build_plan_assets(), "writes": build_write_assets(), "engine": create_state_engine(state_url)}
    backfill(instance, settings, world["extract"], resources)
    return world


def test_con5_conf2_conf5_a_new_hubspot_contact_and_a_salesforce_edit_reach_the_other_crms_then_nothing_more(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings, engine = world["settings"], world["engine"]
    # the first sync: everything the plans hold is written (a fresh sandbox set has links to reconcile)
    first = _write_run(world)
    assert sum(m["created"] for m in first.values()) > 0
    sync_changes(settings, world["extract"], instance, world["resources"])
    _write_run(world)

    # a contact whose HubSpot record the first syncs did not update: a value they brought from Dynamics would be
    # a change (for the Salesforce connection) within the conflict window, which HubSpot, the default app, wins
    # (CONF-1)
    with engine.connect() as conn:
        written = {r[0] for r in conn.execute(sa.select(write_outbox.c.ref).where(
            write_outbox.c.target_crm == "hubspot", write_outbox.c.operation == "update"))}
    links = link_store.load(engine, kind="contact").sort_values("hubspot_id")
    pair = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()
                 & ~links["hubspot_id"].isin(written)].iloc[0]
    hs_id, sf_id = str(pair["hubspot_id"]), str(pair["salesforce_id"])
    with _ui(three_sandboxes, "hubspot") as ui:  # CON-5: a new HubSpot contact goes to Salesforce as a Lead
        ui.post("/contacts", json={"properties": {"email": NEW_EMAIL, "firstname": "New", "lastname": "Person",
                                                  "company": "Newco"}}).raise_for_status()
    with _ui(three_sandboxes, "salesforce") as ui:  # CONF-2: a Salesforce edit on one side goes to HubSpot
        ui.patch(f"/Contact/{sf_id}", json={"FirstName": "Zebediah"}).raise_for_status()
    sync_changes(settings, world["extract"], instance, world["resources"])
    meta = _write_run(world)

    lead = _find(settings, "salesforce", "Lead", "Email", [NEW_EMAIL])
    assert set(lead) == {NEW_EMAIL}
    assert _get(settings, "salesforce", f"sobjects/Lead/{lead[NEW_EMAIL]}")["LastName"] == "Person"
    assert set(_find(settings, "dynamics", "contacts", "emailaddress1", [NEW_EMAIL])) == {NEW_EMAIL}
    hubspot = _get(settings, "hubspot", f"/crm/v3/objects/contacts/{hs_id}", {"properties": "firstname"})
    assert hubspot["properties"]["firstname"] == "Zebediah"
    assert meta[WRITES["hubspot"]]["updated"] >= 1 and meta[WRITES["salesforce"]]["created"] >= 1
    # the baselines now hold what was written (Invariant 2): the value the sync wrote is no user change
    base = baselines.load(engine, "contact", "salesforce", [hs_id]).set_index("field")
    assert base.loc["firstname", "value"] == "Zebediah"

    # HubSpot is the hub: the Salesforce edit reaches Dynamics on the next cycle, through HubSpot; then the sync
    # has converged, and (CONF-5) cycles without outside edits write nothing and spend no write calls
    assert _converge(world) <= 2
    dyn_id = str(link_store.load(engine, kind="contact", hubspot_ids=[hs_id])["dynamics_id"].iloc[0])
    assert _get(settings, "dynamics", f"contacts({dyn_id})", {"$select": "firstname"})["firstname"] == "Zebediah"
    assert [_cycle(world) for _ in range(2)] == [0, 0]
    assert len(_find(settings, "salesforce", "Lead", "Email", [NEW_EMAIL])) == 1


def test_conf5_a_copy_read_before_the_sync_wrote_the_record_is_not_a_change(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """CONF-5: a write run that follows one which wrote a record, before any extract has read that record back
    (the change sensor has not seen the write yet: HubSpot's search trails writes by a few moments), finds the
    record's old value in the mirror. That value is what the sync overwrote, not a user's change: nothing is
    written back, and the user's edit stays everywhere."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings, engine = world["settings"], world["engine"]
    _converge(world, most=6)  # the first syncs
    links = link_store.load(engine, kind="contact").sort_values("hubspot_id")
    pair = links[(links["salesforce_type"] == "Contact") & links["salesforce_id"].notna()].iloc[0]
    hs_id, sf_id = str(pair["hubspot_id"]), str(pair["salesforce_id"])
    with _ui(three_sandboxes, "salesforce") as ui:
        ui.patch(f"/Contact/{sf_id}", json={"FirstName": "Zebediah"}).raise_for_status()
    sync_changes(settings, world["extract"], instance, world["resources"])
    assert _write_run(world)[WRITES["hubspot"]]["updated"] >= 1  # the edit goes to HubSpot (CONF-2)

    again = _write_run(world)  # no extract between: HubSpot's copy in the mirror is the one before the write
    assert again[WRITES["salesforce"]]["updated"] == again[WRITES["hubspot"]]["updated"] == 0
    assert _get(settings, "salesforce", f"sobjects/Contact/{sf_id}")["FirstName"] == "Zebediah"
    hubspot = _get(settings, "hubspot", f"/crm/v3/objects/contacts/{hs_id}", {"properties": "firstname"})
    assert hubspot["properties"]["firstname"] == "Zebediah"
    # once HubSpot is read back, the edit goes on to Dynamics (HubSpot is the hub), then nothing more
    assert _converge(world) == 1
    dyn_id = str(link_store.load(engine, kind="contact", hubspot_ids=[hs_id])["dynamics_id"].iloc[0])
    assert _get(settings, "dynamics", f"contacts({dyn_id})", {"$select": "firstname"})["firstname"] == "Zebediah"


def test_invariant1_a_create_whose_run_died_after_the_call_is_found_not_made_again(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """Invariant 1: the outbox row of a create the CRM took, left ``sent`` (the process died before it could
    record the outcome), is found in the CRM by its lookup field on the next run: one record, confirmed."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings, engine = world["settings"], world["engine"]
    _write_run(world)
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.post("/contacts", json={"properties": {"email": NEW_EMAIL, "firstname": "Crash", "lastname": "Test",
                                                  "company": "Crashco"}}).raise_for_status()  # fmt: skip
    sync_changes(settings, world["extract"], instance, world["resources"])
    _write_run(world)
    made = _find(settings, "dynamics", "contacts", "emailaddress1", [NEW_EMAIL])
    assert len(made) == 1
    # as if the run had died between the call and the commit of its outcome
    with engine.begin() as conn:
        conn.execute(write_outbox.update().where(write_outbox.c.lookup_value == NEW_EMAIL,
                                                 write_outbox.c.target_crm == "dynamics")
                     .values(status=outbox.SENT, target_id=None))  # fmt: skip
    meta = _write_run(world)
    assert meta[WRITES["dynamics"]]["reconciled_in_doubt"] == 1
    assert _find(settings, "dynamics", "contacts", "emailaddress1", [NEW_EMAIL]) == made
    with engine.connect() as conn:
        row = conn.execute(sa.select(write_outbox.c.status, write_outbox.c.target_id).where(
            write_outbox.c.lookup_value == NEW_EMAIL, write_outbox.c.target_crm == "dynamics")).one()  # fmt: skip
    assert tuple(row) == (outbox.DONE, made[NEW_EMAIL])
    assert world["checks"][(WRITES["dynamics"], FAILED_WRITES)].passed  # OPS-6: nothing refused


def test_ops6_a_record_the_crm_refuses_fails_alone_waits_and_goes_once_fixed(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """OPS-6: Salesforce refuses a Lead without a company (a required field); the other creates of the same
    batch are made, the refusal is kept with the API's code and text and shown by the ``failed_writes`` check,
    it is not sent again before its retry is due, and once the record is fixed in HubSpot it goes at once."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings, engine = world["settings"], world["engine"]
    first = _write_run(world)[WRITES["salesforce"]]
    check = world["checks"][(WRITES["salesforce"], FAILED_WRITES)]
    refused = outbox.failures(engine, "salesforce")
    assert first["failed"] == len(refused) > 0 and first["created"] > 0
    assert not check.passed and check.metadata["by_code"].value == {"REQUIRED_FIELD_MISSING": len(refused)}
    assert set(refused["message"]) == {"Required fields are missing: [Company]"}

    again = _write_run(world)[WRITES["salesforce"]]  # nothing changed, and no retry is due yet
    assert (again["failed"], again["waiting_retry"]) == (0, len(refused))

    hubspot_id = refused["ref"].iloc[0].removeprefix("hubspot:")
    email = _get(settings, "hubspot", f"/crm/v3/objects/contacts/{hubspot_id}", {"properties": "email"})
    email = email["properties"]["email"]
    assert _find(settings, "salesforce", "Lead", "Email", [email]) == {}
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.patch(f"/contacts/{hubspot_id}", json={"properties": {"company": "Fixed Inc"}}).raise_for_status()
    sync_changes(settings, world["extract"], instance, world["resources"])
    fixed = _write_run(world)[WRITES["salesforce"]]
    assert fixed["created"] >= 1
    lead = _find(settings, "salesforce", "Lead", "Email", [email])
    assert _get(settings, "salesforce", f"sobjects/Lead/{lead[email.lower()]}")["Company"] == "Fixed Inc"
    assert f"hubspot:{hubspot_id}" not in set(outbox.failures(engine, "salesforce")["ref"])


def test_invariant1_a_create_whose_answer_was_lost_is_found_never_sent_twice(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """Invariant 1 on the wire: HubSpot carries out every batch create but its answer comes back cut short
    (the sandbox's ``malformed`` fault). The connector does not send a create again (it could make the
    records twice); the run looks them up by email, confirms those it finds, and no contact exists twice."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings = world["settings"]
    with three_sandboxes.admin() as admin:
        admin.put("/faults", json={"rate_malformed": 1.0, "path_prefix": "/crm/v3/objects/contacts/batch/create"}
                  ).raise_for_status()  # fmt: skip
    meta = _write_run(world)[WRITES["hubspot"]]
    with three_sandboxes.admin() as admin:
        admin.delete("/faults").raise_for_status()
        usage = admin.get("/usage").json()
    # the contacts' creates (the companies' and deals' answers came back whole)
    created = outbox.states(world["engine"], _keys(world["engine"], "hubspot", "create", "contacts"))
    assert meta["in_doubt"] == meta["reconciled_in_doubt"] == len(created) > 0
    assert set(created["status"]) == {outbox.DONE}
    sent = usage["endpoints"]["POST /crm/v3/objects/{object_type}/batch/create"]
    with world["engine"].connect() as conn:
        per_object = conn.execute(sa.select(write_outbox.c.object, sa.func.count()).where(
            write_outbox.c.target_crm == "hubspot", write_outbox.c.operation == "create")
            .group_by(write_outbox.c.object)).all()  # fmt: skip
    assert sent == sum(-(-n // 100) for _, n in per_object)  # each batch sent once, none again
    emails = [str(e) for e in _payload_values(world["engine"], "hubspot", "email")]
    found = _find(settings, "hubspot", "contacts", "email", emails)
    assert set(found) == {e.lower() for e in emails}
    again = _write_run(world)[WRITES["hubspot"]]
    assert again["created"] == 0 and again["already_written"] >= len(created)


def _keys(engine, target: str, operation: str, obj: str | None = None) -> list[str]:
    query = sa.select(write_outbox.c.key).where(write_outbox.c.target_crm == target,
                                                write_outbox.c.operation == operation)  # fmt: skip
    with engine.connect() as conn:
        return list(conn.execute(query if obj is None else query.where(write_outbox.c.object == obj)).scalars())


def _payload_values(engine, target: str, field: str) -> list:
    import json

    with engine.connect() as conn:
        rows = conn.execute(sa.select(write_outbox.c.payload).where(
            write_outbox.c.target_crm == target, write_outbox.c.operation == "create")).scalars()  # fmt: skip
        return [v for p in rows if (v := json.loads(p).get(field)) is not None]


# the write assets in a process of their own, as a run worker runs them (killed by the test)
_WRITER = """
import sys
import dagster as dg
from crm_pipelines.defs.resources import build_resources
from crm_pipelines.defs.writeback.write_assets import build_write_assets
from crm_pipelines.settings import load_settings
path, url = sys.argv[1], sys.argv[2]
dg.materialize(build_write_assets(), resources=build_resources(load_settings(path), path, state_url=url))
"""
# every object the first sync creates records of (contacts, companies, deals, tasks)
_OBJECTS = {"hubspot": ["contacts", "companies", "deals"],
            "salesforce": ["Lead", "Contact", "Account", "Opportunity", "Task"],
            "dynamics": ["contacts", "leads", "accounts", "opportunities"]}


def _admin(sandbox: RunningSandbox, crm: str) -> httpx.Client:
    base = sandbox.base_url if crm == "hubspot" else sandbox.info[crm]["base_url"]
    return httpx.Client(base_url=f"{base}/__sandbox__", verify=sandbox.verify, timeout=30)


def _calls(sandbox: RunningSandbox) -> int:
    total = 0
    for crm in _OBJECTS:
        with _admin(sandbox, crm) as admin:
            total += admin.get("/usage").json()["total"]
    return total


def _live(sandbox: RunningSandbox) -> dict[tuple[str, str], int]:
    out = {}
    for crm, objects in _OBJECTS.items():
        with _admin(sandbox, crm) as admin:
            stats = admin.get("/stats").json()
        out |= {(crm, obj): stats[obj]["live"] for obj in objects}
    return out


def test_invariant1_killed_at_many_points_the_writes_end_as_one_uninterrupted_run(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """Invariant 1 under SIGKILL: the writing process is killed at its Nth API call, for several N and delays
    (each API call slowed down so that the kills land inside the write path), then one run goes to the end. No
    record is made twice: every CRM holds exactly its records before plus one per create the outbox confirms,
    and every planned create is confirmed or refused by the CRM (none left in doubt). (The kill between a
    CRM's answer and the commit of its outcome is made certain by the test above that leaves writes in doubt.)"""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    path = str(tmp_path / "crm_pipelines.yaml")
    assert dg.materialize([world["unified"]], instance=instance, resources=world["resources"]).success
    assert dg.materialize([world["unified"], world["plans"]], selection=list(PLANS.values()), instance=instance,
                          resources=world["resources"]).success  # fmt: skip
    before = _live(three_sandboxes)
    for crm in _OBJECTS:
        with _admin(three_sandboxes, crm) as admin:
            admin.put("/faults", json={"latency_ms": 150}).raise_for_status()
    kills = 0
    # killed as the Nth call reaches the CRM (before it runs it: 150 ms of latency first), or about when the CRM
    # has run it, or a little after (its answer in, its outcome being committed): which of these a kill hits
    # depends on the machine's speed; the outcome must not
    # spread over the whole run: HubSpot's pipelines and creates, the other CRMs' creates, updates, associations
    for n, delay in [(n, delay) for n in (1, 2, 4, 6, 9, 12, 16) for delay in (0.0, 0.17, 0.3)]:
        start = _calls(three_sandboxes)
        child = subprocess.Popen([sys.executable, "-c", _WRITER, path, state_url], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        while child.poll() is None and _calls(three_sandboxes) < start + n:
            time.sleep(0.01)
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    # the runs were killed mid-way, not finished; how many of the 21 a kill reaches depends on the machine's load
    # (each killed run leaves less to do, so a late run may finish before its Nth call): 11 and 12+ were seen
    assert kills >= 8
    for crm in _OBJECTS:
        with _admin(three_sandboxes, crm) as admin:
            admin.delete("/faults").raise_for_status()
    _write_run(world)

    engine = world["engine"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(write_outbox.c.target_crm, write_outbox.c.object, write_outbox.c.status,
                                      write_outbox.c.code).where(write_outbox.c.operation == "create")).all()
    assert rows and {status for _, _, status, _ in rows} <= {outbox.DONE, outbox.FAILED}
    assert {code for _, _, status, code in rows if status == outbox.FAILED} <= {"REQUIRED_FIELD_MISSING"}
    made = Counter((crm, obj) for crm, obj, status, _ in rows if status == outbox.DONE)
    assert _live(three_sandboxes) == {key: n + made[key] for key, n in before.items()}


def _exists(settings, crm: str, path: str) -> bool:
    async def run() -> bool:
        async with open_client(crm, settings, Secrets({})) as client:
            try:
                if crm == "salesforce":
                    await client.call("GET", path, f"GET {path}")
                else:
                    await client.api.request("GET", path, endpoint=f"GET {path}")
            except NotFoundError:
                return False
            return True

    return asyncio.run(run())


def test_del1_del2_del3_del4_deletions_are_written_one_way_and_nothing_comes_back(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deleting a Salesforce Contact deletes its HubSpot contact (DEL-2, switched on here); deleting a Salesforce
    Opportunity deletes its HubSpot deal, deleting a HubSpot deal keeps its Opportunity (DEL-3); a Dynamics
    deletion deletes nothing elsewhere (DEL-1); and a HubSpot contact a person deleted is not created again from
    the Salesforce record it was linked to (DEL-4)."""
    world = _world(tmp_path, three_sandboxes, state_url, instance,
                   sync={"salesforce": {"delete_contact_when_contact_deleted": True}})
    settings, engine = world["settings"], world["engine"]
    hs_deals = sorted(mirror.read_records(engine, "hubspot", "deals", columns=[])["id"].astype(str))
    opps = sorted(mirror.read_records(engine, "salesforce", "Opportunity", columns=[])["id"].astype(str))
    (deal_a, opp_a), (deal_b, opp_b) = (hs_deals[0], opps[0]), (hs_deals[1], opps[1])
    _link_deals(engine, [(deal_a, opp_a), (deal_b, opp_b)])  # as the deal creates will link them
    _write_run(world)
    _converge(world)  # the sync converges before anything is deleted
    links = link_store.load(engine, kind="contact")
    contact_gone, hs_deleted = _unique_email_links(engine, links.assign(dynamics_id=None), "Contact")[:2]
    sf_of = links.set_index("hubspot_id")["salesforce_id"]
    dyn = links[links["dynamics_id"].notna() & ~links["hubspot_id"].isin([contact_gone, hs_deleted])].iloc[0]
    email = _get(settings, "hubspot", f"/crm/v3/objects/contacts/{hs_deleted}", {"properties": "email"})
    email = email["properties"]["email"].lower()
    with _ui(three_sandboxes, "salesforce") as ui:
        ui.delete(f"/Contact/{sf_of[contact_gone]}").raise_for_status()
        ui.delete(f"/Opportunity/{opp_a}").raise_for_status()
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.delete(f"/contacts/{hs_deleted}").raise_for_status()
        ui.delete(f"/deals/{deal_b}").raise_for_status()
    with _ui(three_sandboxes, "dynamics") as ui:
        ui.delete(f"/{'contacts' if dyn['dynamics_type'] == 'contact' else 'leads'}/{dyn['dynamics_id']}"
                  ).raise_for_status()  # fmt: skip
    # a deletion leaves no trace in the change polls: the sensor's hourly deletion sweep brings it in (DEL-5);
    # here every tick is an hour later
    monkeypatch.setattr(sensors, "DELETION_SWEEP_EVERY", timedelta(0))
    deleted = 0
    for _ in range(3):  # the deletions, then cycles with nothing more to do
        sync_changes(settings, world["extract"], instance, world["resources"])
        deleted += sum(m["deleted"] for m in _write_run(world).values())
    assert _cycle(world) == 0
    assert not _exists(settings, "hubspot", f"/crm/v3/objects/contacts/{contact_gone}")  # DEL-2
    assert not _exists(settings, "hubspot", f"/crm/v3/objects/deals/{deal_a}")  # DEL-3
    assert deleted == 2  # the HubSpot contact and the HubSpot deal, once each
    assert _exists(settings, "salesforce", f"sobjects/Opportunity/{opp_b}")  # DEL-3: never the reverse
    assert _exists(settings, "hubspot", f"/crm/v3/objects/contacts/{dyn['hubspot_id']}")  # DEL-1
    assert _exists(settings, "salesforce", f"sobjects/Contact/{sf_of[hs_deleted]}")  # HubSpot's deletion stays
    assert email not in _find(settings, "hubspot", "contacts", "email", [email])  # DEL-4: not created again


def test_del4_a_contact_deleted_before_its_copies_are_read_back_is_not_created_again(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DEL-4 within one cycle: a person creates a HubSpot contact, the sync copies it to Salesforce and
    Dynamics, and the person deletes it before an extract has read the copies back. The links the writes
    recorded (``origin: sync``) pair the copies with it, so neither copy brings it back."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    settings = world["settings"]
    _write_run(world)
    with _ui(three_sandboxes, "hubspot") as ui:
        made = ui.post("/contacts", json={"properties": {"email": NEW_EMAIL, "firstname": "Short", "lastname": "Lived",
                                                         "company": "Briefly"}})  # fmt: skip
        made.raise_for_status()
    sync_changes(settings, world["extract"], instance, world["resources"])
    meta = _write_run(world)
    assert meta[WRITES["salesforce"]]["created"] >= 1 and meta[WRITES["dynamics"]]["created"] >= 1
    links = link_store.load(world["engine"], kind="contact", hubspot_ids=[str(made.json()["id"])])
    assert links["origin"].tolist() == ["sync"] and links[["salesforce_id", "dynamics_id"]].notna().all(axis=None)
    with _ui(three_sandboxes, "hubspot") as ui:
        ui.delete(f"/contacts/{made.json()['id']}").raise_for_status()
    monkeypatch.setattr(sensors, "DELETION_SWEEP_EVERY", timedelta(0))  # the hourly deletion sweep, every tick
    for _ in range(2):
        sync_changes(settings, world["extract"], instance, world["resources"])
        _write_run(world)
    assert _find(settings, "hubspot", "contacts", "email", [NEW_EMAIL]) == {}
    assert set(_find(settings, "salesforce", "Lead", "Email", [NEW_EMAIL])) == {NEW_EMAIL}  # kept (DEL-2 off)
    assert set(_find(settings, "dynamics", "contacts", "emailaddress1", [NEW_EMAIL])) == {NEW_EMAIL}  # DEL-1


def test_ops2_ops8_a_run_writes_what_the_24h_budget_covers_and_the_next_the_rest(
    tmp_path: Path, three_sandboxes: RunningSandbox, state_url: str, instance: dg.DagsterInstance
) -> None:
    """OPS-2/OPS-8: with one call left in Salesforce's 24 h budget, the write run succeeds, never goes over the
    limit, and defers what it could not send; once the limit is raised the next run writes the rest."""
    world = _world(tmp_path, three_sandboxes, state_url, instance)
    engine, path = world["engine"], tmp_path / "crm_pipelines.yaml"
    ledger = SqlCallLedger(engine)
    limit = ledger.used("salesforce", time.time()) + 1  # (unlimited until now: the ledger counted nothing)
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "connections": {"salesforce": {"api_call_limit": limit}}}))
    tight = _write_run(world)[WRITES["salesforce"]]
    assert tight["deferred"] > 0 and ledger.used("salesforce", time.time()) <= limit
    path.write_text(yaml.safe_dump(data))
    rest = _write_run(world)[WRITES["salesforce"]]
    assert rest["deferred"] == 0 and rest["created"] > tight["created"]
    created = _find(world["settings"], "salesforce", "Lead", "Email", _payload_values(engine, "salesforce", "Email"))
    with engine.connect() as conn:
        done = conn.execute(sa.select(sa.func.count()).select_from(write_outbox).where(
            write_outbox.c.target_crm == "salesforce", write_outbox.c.operation == "create",
            write_outbox.c.object == "Lead", write_outbox.c.status == outbox.DONE)).scalar_one()  # fmt: skip
    assert len(created) == done  # every Lead once, none lost on the way

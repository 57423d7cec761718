"""ROLL-2/ROLL-3 through real Dagster runs on the three sandboxes (both state backends): with HubSpot contact
properties named as rollup targets, the plan writes each contact's figures over the deals of all three CRMs
(each deal identity once), and once a target holds its figure, that contact is planned no more."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from crm_pipelines.defs.writeback.plans import build_plans
from crm_pipelines.state import unified
from crm_pipelines_tests.extract.conftest import SandboxRuns
from crm_pipelines_tests.extract.test_unified_incremental import _ui
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

TARGETS = {"num_associated_deals": "all_crm_deals", "total_revenue": "all_crm_revenue"}


def _rollup_updates(engine, settings) -> pd.DataFrame:
    updates = build_plans(engine, settings)["hubspot"].updates
    return updates[updates["decided_by"] == "ROLL-2"].set_index(["record_id", "field"])


def test_roll_2_and_3_cross_crm_rollups_are_planned_for_hubspot_and_only_where_they_changed(
    three_sandboxes: RunningSandbox, three_sandbox_runs: Callable[..., SandboxRuns]
) -> None:
    sandbox = three_sandboxes
    with sandbox.api() as api:  # the target properties, made as a HubSpot admin makes them
        for name in TARGETS.values():
            api.post("/crm/v3/properties/contacts", json={
                "name": name, "label": name, "type": "number", "fieldType": "number",
                "groupName": "contactinformation"}).raise_for_status()  # fmt: skip
    runs = three_sandbox_runs(sync={"hubspot": {"rollup_targets": TARGETS}})
    settings, engine = runs.settings, runs.engine

    planned = _rollup_updates(engine, settings)
    # ROLL-2, computed apart: a contact identity's deals are its distinct deal identities in any CRM
    pairs = unified.read(engine, "deal_contact")
    identities = unified.read(engine, "contact_identities").dropna(subset=["hubspot_id"])
    counts = pairs.groupby("contact_identity")["deal_identity"].nunique()
    expected = identities.assign(n=identities["identity_id"].map(counts)).dropna(subset=["n"])
    assert len(expected) > 10
    got = planned.xs(TARGETS["num_associated_deals"], level="field")["new"]
    assert {(str(h), str(int(n))) for h, n in zip(expected["hubspot_id"], expected["n"], strict=True)} \
        == {(str(h), v) for h, v in got.items()}
    crms_of = pairs.groupby("contact_identity")["crm"].agg(set)
    other_crm_only = {c for c, crms in crms_of.items() if "hubspot" not in crms}
    assert other_crm_only & set(expected["identity_id"]), "some contacts' deals are only in Salesforce or Dynamics"
    assert planned.xs(TARGETS["total_revenue"], level="field")["new"].notna().any()

    # ROLL-3: three contacts' targets set to their figures (by hand, as a write would): planned no more
    done = sorted(got.index)[:3]
    with _ui(sandbox, "hubspot") as ui:
        for hubspot_id in done:
            values = {field: planned.loc[(hubspot_id, field), "new"] for field in TARGETS.values()
                      if (hubspot_id, field) in planned.index}  # fmt: skip
            ui.patch(f"/contacts/{hubspot_id}", json={"properties": values}).raise_for_status()
    runs.sync_changes()
    runs.unify()
    after = _rollup_updates(engine, settings)
    assert not set(after.index.get_level_values("record_id")) & set(done)
    assert len(after) == len(planned) - sum((h, f) in planned.index for h in done for f in TARGETS.values())

"""The ROLL-1 drift check in Dagster: ``unified/contact_rollups`` against HubSpot's calculated rollups as
extracted (``transform/rollup_check.py``), with the count and a sample of the differences. It reads every
contact's rollups, so it runs on the sweep schedule (``sweep.py``), not with each ``unified`` run."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipelines.defs.resources import StateDatabase
from crm_pipelines.defs.unified.check_texts import ROLLUP_DRIFT as ROLLUP_DRIFT_TEXT
from crm_pipelines.defs.unified.check_texts import TODO
from crm_pipelines.defs.unified.sweep import SWEEP
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.state import mirror, unified
from crm_pipelines.transform.rollup_check import FIGURES, ROLLUP_DRIFT, rollup_drift


def hubspot_rollups(engine) -> pd.DataFrame:
    """The live mirrored HubSpot contacts' ``id`` and five calculated rollups (only those values are read)."""
    table = mirror.table_for("hubspot", "contacts")
    props = table.c.record["properties"]
    query = sa.select(table.c.id, *(props[f].as_string().label(f) for f in FIGURES)).where(table.c.deleted.is_(False))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=["id", *FIGURES])


def build_rollup_drift_check(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=ROLLUP_DRIFT, automation_condition=SWEEP,
                    description=with_rule_refs(ROLLUP_DRIFT_TEXT))
    def hubspot_rollups_match(state: StateDatabase) -> dg.AssetCheckResult:
        engine = state.engine()
        outcome = rollup_drift(unified.read(engine, "contact_rollups"), hubspot_rollups(engine))
        return dg.AssetCheckResult(
            passed=outcome.passed, severity=dg.AssetCheckSeverity.WARN,
            metadata={"count": outcome.count, "by": dg.MetadataValue.json(outcome.by),
                      "sample": dg.MetadataValue.json(outcome.sample),
                      **({} if outcome.passed else {"what_to_do": dg.MetadataValue.md(TODO[ROLLUP_DRIFT])})},
        )  # fmt: skip

    return hubspot_rollups_match

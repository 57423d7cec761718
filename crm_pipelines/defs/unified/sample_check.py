"""Incremental = full, on a sample (issue 11, Invariant 6), as a check of its own: a sample of records per
object re-derived from the mirror must give exactly the rows stored for them. It reads a random sample and
runs the transform's fixpoint over the stored result, seconds at a million people, so it runs on the sweep
schedule (``SWEEP``), not inside every incremental ``unified`` run on the latency path."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import dagster as dg
from pydantic import Field

from crm_pipelines.defs.resources import CrmSettings, StateDatabase
from crm_pipelines.defs.unified.check_texts import SAMPLE_CHECK, TODO
from crm_pipelines.defs.unified.mirrors import transform_settings
from crm_pipelines.defs.unified.sweep import SWEEP
from crm_pipelines.defs.unified.update import verify_sample
from crm_pipelines.rules_doc import with_rule_refs

INCREMENTAL_EQUALS_FULL = "incremental_equals_full"


class SampleConfig(dg.Config):
    sample_size: int = Field(50, ge=1, description="records per object re-derived from the mirror")


def build_sample_check(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=INCREMENTAL_EQUALS_FULL, automation_condition=SWEEP,
                    description=with_rule_refs(SAMPLE_CHECK))
    def incremental_equals_full(config: SampleConfig, state: StateDatabase,
                                crm_settings: CrmSettings) -> dg.AssetCheckResult:
        engine = state.engine()
        outcome = verify_sample(engine, transform_settings(crm_settings.settings), size=config.sample_size)
        return dg.AssetCheckResult(
            passed=outcome.passed, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"records": outcome.records, "differing": dg.MetadataValue.json(outcome.differing),
                      "sample": dg.MetadataValue.json(outcome.sample),
                      **({} if outcome.passed else {"what_to_do": dg.MetadataValue.md(TODO[INCREMENTAL_EQUALS_FULL])})},
        )  # fmt: skip

    return incremental_equals_full

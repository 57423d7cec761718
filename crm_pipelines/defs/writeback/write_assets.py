"""The write assets (issue 13): ``writeback/<crm>_writes`` executes that CRM's stored plan
(``write_run.py``), and its ``failed_writes`` check shows the records the CRM refused (OPS-6): per error code,
with a sample naming the record and the API's text. A refused record never fails the run; it is retried on
later runs, backing off (``state/outbox.py``)."""

import asyncio

import dagster as dg

from crm_pipelines.crm.connections import writes_on
from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.resources import CrmConnections, CrmSettings, StateDatabase
from crm_pipelines.defs.writeback.assets import PLANS, markdown_table
from crm_pipelines.defs.writeback.write_run import WriteReport, write_target
from crm_pipelines.state import outbox

WRITES = {crm: dg.AssetKey(["writeback", f"{crm}_writes"]) for crm in PLANS}
FAILED_WRITES = "failed_writes"


def _metadata(report: WriteReport, meter: Meter) -> dict:
    return {
        "created": report.created,
        "updated": report.updated,
        "deleted": report.deleted,  # DEL-2/DEL-3
        "associated": report.associated,  # DEAL-6
        "pipelines_created": report.pipelines,  # DEAL-3: pipelines and stages
        "failed": report.failed,
        "reconciled_in_doubt": report.reconciled,  # creates a killed run sent, found in the CRM (not resent)
        "in_doubt": report.in_doubt,  # creates whose answer was lost in this run (never sent twice)
        "already_written": report.already_done,  # confirmed earlier; the next extract reads them back
        "waiting_retry": report.waiting_retry,
        "superseded": report.superseded,
        "deferred": report.deferred,  # OPS-8: left for a later run by the 24 h budget
        "not_yet_written": dg.MetadataValue.json(report.not_yet_written),
        "api_calls": meter.count(),
        "examples": dg.MetadataValue.json(report.examples),
    }


def _write_asset(crm: str) -> dg.AssetsDefinition:
    key = WRITES[crm]

    @dg.asset(key=key, deps=[PLANS[crm]], group_name="writeback", kinds={crm},
              pool=f"{crm}_api",  # never two runs writing to one connection at once, nor beside its extract
              description=f"Writes {crm}'s plan: creates, field updates, closes, deletions and associations, "
                          "batched, through the outbox (idempotent across crashes); records the CRM refuses are "
                          "kept and retried (OPS-6)",
              check_specs=[dg.AssetCheckSpec(FAILED_WRITES, asset=key, description=f"OPS-6: records {crm} refused, "
                                             "per error code, with a sample (each is retried later)")])
    def writes(context: dg.AssetExecutionContext, state: StateDatabase, crm_settings: CrmSettings,
               crm_connections: CrmConnections):
        settings = crm_settings.settings
        engine = state.engine()
        meter = Meter()
        if not getattr(settings.connections, crm).enabled:
            reason, report = "connection disabled", WriteReport()
        elif not writes_on(settings, crm, crm_connections.secrets()):
            reason, report = "writes off (OPS-10): the plan is all that is made", WriteReport()
        else:
            async def run() -> WriteReport:
                async with crm_connections.client(crm, state, meter) as client:
                    return await write_target(engine, settings, crm, client)

            reason, report = "written", asyncio.run(run())
        context.log.info(f"{crm} writes ({reason}): {report.created} created, {report.updated} updated, "
                         f"{report.deleted} deleted, {report.failed} refused, {report.reconciled} found written by an "
                         f"earlier run, {meter.count()} API calls")
        for error in report.errors[:20]:
            context.log.warning(f"{crm}: {error['operation']} of {error['object']} {error['ref']} not written: "
                                f"{error['code']}: {error['message']}")  # refused, in doubt or over budget
        failures = outbox.failures(engine, crm)
        by_code = {str(k): int(v) for k, v in failures["code"].fillna("unknown").value_counts().items()}
        sample = markdown_table(failures, ["operation", "object", "ref", "code", "message", "attempts"])
        yield dg.MaterializeResult(metadata={"writes": reason, **_metadata(report, meter)})
        yield dg.AssetCheckResult(
            asset_key=key, check_name=FAILED_WRITES, passed=failures.empty, severity=dg.AssetCheckSeverity.WARN,
            metadata={"count": len(failures), "by_code": dg.MetadataValue.json(by_code),
                      "sample": dg.MetadataValue.md(sample)})

    return writes


def build_write_assets() -> list[dg.AssetsDefinition]:
    return [_write_asset(crm) for crm in WRITES]

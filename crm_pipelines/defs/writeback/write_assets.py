"""The write assets (issue 13): ``writeback/<crm>_writes`` executes that CRM's stored plan
(``write_run.py``), and its ``failed_writes`` check shows the records the CRM refused (OPS-6): per error code,
with a sample naming the record and the API's text. A refused record never fails the run; it is retried on
later runs, backing off (``state/outbox.py``)."""

import asyncio

import dagster as dg
import pandas as pd

from crm_pipelines.crm.connections import writes_on
from crm_pipelines.crm.metering import Meter
from crm_pipelines.defs.resources import CrmConnections, CrmSettings, StateDatabase
from crm_pipelines.defs.unified.labels import WRITES_TAG, state_kind
from crm_pipelines.defs.unified.markdown import markdown_table, secret_values, shown_of
from crm_pipelines.defs.writeback.assets import PLANS
from crm_pipelines.defs.writeback.write_run import OUTCOMES, WriteReport, write_target
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings
from crm_pipelines.state import outbox
from crm_pipelines.state.api_usage import budget_metadata

WRITES = {crm: dg.AssetKey(["writeback", f"{crm}_writes"]) for crm in PLANS}
FAILED_WRITES = "failed_writes"
FAILED_SHOWN = 10
FAILED_COLUMNS = ["operation", "object", "ref", "code", "message", "attempts"]
FAILED_HEADERS = ["operation", "object", "record", "error code", "API's message", "attempts"]


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


def results_table(report: WriteReport) -> pd.DataFrame:
    """This run's records per API object and outcome (``OUTCOMES``), with a total row."""
    rows = [{"object": obj, **counts} for obj, counts in sorted(report.by_object.items())]
    if report.pipelines:  # DEAL-3: written before the records, counted apart
        rows.append({"object": "pipelines and stages", **dict.fromkeys(OUTCOMES, 0), "created": report.pipelines})
    table = pd.DataFrame(rows, columns=["object", *OUTCOMES])
    if len(table) > 1:
        total = pd.DataFrame([{"object": "**total**", **{k: int(table[k].sum()) for k in OUTCOMES}}])
        table = pd.concat([table, total], ignore_index=True)
    return table


def failed_records(failures: pd.DataFrame, secrets: list[str]) -> str:
    """The records the CRM refuses (still to retry, OPS-6): the first ``FAILED_SHOWN`` with the API's error code
    and text, and how many there are."""
    if failures.empty:
        return "_none_"
    head = f"{shown_of(min(FAILED_SHOWN, len(failures)), len(failures), 'records refused and kept to retry')}:\n\n"
    return head + markdown_table(failures, FAILED_COLUMNS, sample=FAILED_SHOWN, secrets=secrets,
                                 headers=FAILED_HEADERS)


def write_description(crm: str) -> str:
    return (
        f"Carries out `{crm}_plan` against {crm}'s API: creates, field updates, closes (DEAL-4), deletions "
        "(DEL-2/3) and associations (DEAL-6), batched at the API's maximum, through the outbox in the state database "
        "(Invariant 1: idempotent across crashes, never a record made twice). Runs only where writes are on "
        f"(OPS-10: `connections.{crm}.writes`; the sandbox: on, the real API: off until set).\n\n"
        "Metadata: `results` (created / updated / deleted / associated / failed per API object, this run), "
        "`failed_records` (the records the CRM refuses with its error code and text, OPS-6; each is retried later), "
        "and `api_calls` with `api_calls_used_24h` / `api_calls_budget_24h` (OPS-2), plotted on the Plots tab.")


def failed_writes_description(crm: str) -> str:
    return (
        f"OPS-6: records {crm} refused (validation errors, missing required fields, duplicates), per error code "
        "with a sample naming the record and the API's text. A refused record never fails the run: it is kept and "
        "retried with a growing delay, and at once when the record changes (so fixing it in the source CRM "
        "sends it). A warning. On the sandboxes (and so in the demo) it warns on purpose: the Salesforce sandbox "
        "refuses Leads created without a company (`REQUIRED_FIELD_MISSING`), and HubSpot holds such contacts.")


FAILED_TODO = (
    "Read each record's error: most are data the target CRM requires or refuses (a required field such as a "
    "Lead's Company, a value outside a picklist, a duplicate rule). Fix the record in the CRM it comes from; the "
    "next sync run sends it again at once. Records left as they are are retried with a growing delay.")


def _write_asset(crm: str, settings: Settings | None) -> dg.AssetsDefinition:
    key = WRITES[crm]

    @dg.asset(key=key, deps=[PLANS[crm]], group_name="writeback", kinds={crm, *state_kind(settings)},
              tags={WRITES_TAG: crm},
              pool=f"{crm}_api",  # never two runs writing to one connection at once, nor beside its extract
              description=with_rule_refs(write_description(crm)),
              check_specs=[dg.AssetCheckSpec(FAILED_WRITES, asset=key,
                                             description=with_rule_refs(failed_writes_description(crm)))])
    def writes(context: dg.AssetExecutionContext, state: StateDatabase, crm_settings: CrmSettings,
               crm_connections: CrmConnections):
        settings = crm_settings.settings
        engine = state.engine()
        meter = Meter()
        secrets = crm_connections.secrets()
        if not getattr(settings.connections, crm).enabled:
            reason, report = "connection disabled", WriteReport()
        elif not writes_on(settings, crm, secrets):
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
        masked = secret_values(settings, secrets.values)
        failures = outbox.failures(engine, crm)
        by_code = {str(k): int(v) for k, v in failures["code"].fillna("unknown").value_counts().items()}
        results = results_table(report)
        limit = getattr(settings.connections, crm).api_call_limit
        yield dg.MaterializeResult(metadata={
            "writes": reason,
            "results": dg.MetadataValue.md(markdown_table(results, list(results.columns), sample=len(results))),
            "failed_records": dg.MetadataValue.md(failed_records(failures, masked)),
            "failed_records_total": len(failures),
            **_metadata(report, meter),
            **budget_metadata(engine, crm, limit),
        })  # fmt: skip
        sample = markdown_table(failures, FAILED_COLUMNS, secrets=masked, headers=FAILED_HEADERS)
        yield dg.AssetCheckResult(
            asset_key=key, check_name=FAILED_WRITES, passed=failures.empty, severity=dg.AssetCheckSeverity.WARN,
            metadata={"count": len(failures), "by_code": dg.MetadataValue.json(by_code),
                      "sample": dg.MetadataValue.md(sample),
                      **({"what_to_do": dg.MetadataValue.md(FAILED_TODO)} if len(failures) else {})})

    return writes


def build_write_assets(settings: Settings | None = None) -> list[dg.AssetsDefinition]:
    return [_write_asset(crm, settings) for crm in WRITES]

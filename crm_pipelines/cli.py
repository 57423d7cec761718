"""The ``crm-pipelines`` command: a thin shell over the parts of the project."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click

DEFAULT_DATA_DIR = Path(os.environ.get("CRM_PIPELINES_SANDBOX_DIR", ".sandbox"))
DEFAULT_SEED = 42
DEFAULT_SCALE = 1_000


@click.group()
def main() -> None:
    """Self-hosted CRM sync engine for HubSpot, Salesforce and Dynamics 365 on Dagster.

    \b
    Start here:
      make demo                           # sandboxes, bulk import, transform, plans, writes, live edits
      crm-pipelines check                 # are the connections' credentials accepted?
      crm-pipelines plan --crm hubspot    # what the sync would write (dry run)
      crm-pipelines usage                 # API calls of the last 24 h per connection
    Every command takes --help. Settings come from --settings or $CRM_PIPELINES_SETTINGS."""


@main.group()
def sandbox() -> None:
    """Local emulators of the CRM APIs (the embedded default for demos, dry runs and tests).

    \b
    Example:
      crm-pipelines sandbox serve --scale 1000      # HubSpot, Salesforce and Dynamics on their default ports"""


def _port_options(f):
    from crm_pipelines.sandbox.registry import SANDBOXES

    for name, cls in reversed(SANDBOXES.items()):
        f = click.option(
            f"--{name}-port",
            type=int,
            default=cls.default_port,
            show_default=True,
            help=f"port of the {name} sandbox (0 = any free port)",
        )(f)
    return f


@sandbox.command("serve")
@click.option("--only", multiple=True, help="serve only these sandboxes (repeatable); default: all")
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to listen on")
@_port_options
@click.option("--tls/--no-tls", default=False, help="HTTPS with a certificate from a local CA")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="own certificate (PEM)")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="its private key (PEM)")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="where sandbox state persists across restarts",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="data generator seed")
@click.option("--scale", type=int, default=DEFAULT_SCALE, show_default=True, help="people in the universe")
@click.option("--reset", is_flag=True, help="discard the data directory's records and regenerate")
@click.option("--no-rate-limits", is_flag=True, help="lift the APIs' rate limits (benchmarks, bulk loads)")
@click.option("--json", "as_json", is_flag=True, help="first output line: one JSON object for scripts")
@click.option(
    "--salesforce-bulk-seconds",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="how long a Salesforce Bulk API 2.0 query job runs before JobComplete (0 = done at once)",
)
@click.option(
    "--dynamics-org-url",
    default=None,
    help="the Dynamics org URL the sandbox answers as, e.g. https://contoso.crm.dynamics.com (default: its own)",
)
def serve(
    only: tuple[str, ...],
    host: str,
    tls: bool,
    cert: Path | None,
    key: Path | None,
    data_dir: Path,
    seed: int,
    scale: int,
    reset: bool,
    no_rate_limits: bool,
    as_json: bool,
    salesforce_bulk_seconds: float,
    dynamics_org_url: str | None,
    **ports: int,
) -> None:
    """Serve the CRM sandboxes on loopback until interrupted (Ctrl-C stops them).

    The data directory keeps their records across restarts: the demo's directory and ports serve the
    demo's state again, so runs launched from the Dagster UI work on it.

    \b
    Examples:
      crm-pipelines sandbox serve                           # all three, default ports, .sandbox/
      crm-pipelines sandbox serve --only hubspot --hubspot-port 0 --json   # any free port, printed as JSON
      crm-pipelines sandbox serve --tls --no-rate-limits    # HTTPS (vendor SDKs), no rate limits"""
    from crm_pipelines.sandbox.serve import ServeOptions, run

    run(
        ServeOptions(
            only=list(only),
            host=host,
            ports={k.removesuffix("_port"): v for k, v in ports.items()},
            tls=tls or bool(cert),
            cert=cert,
            key=key,
            data_dir=data_dir,
            seed=seed,
            scale=scale,
            reset=reset,
            rate_limits=not no_rate_limits,
            as_json=as_json,
            settings={
                "salesforce": {"bulk_query_seconds": salesforce_bulk_seconds},
                "dynamics": {"org_url": dynamics_org_url} if dynamics_org_url else {},
            },
        )
    )


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
              show_default=True, help="the sandboxes' data (the one `sandbox serve` serves afterwards)")
@click.option("--scale", type=int, default=DEFAULT_SCALE, show_default=True, help="people in the generated universe")
@click.option("--verbose", is_flag=True, help="show Dagster's DEBUG events here too (they always go to the log file)")
@click.option("--api-call-limit", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="each connection's 24 h API call limit in the demo's settings (OPS-2), so usage shows")
@click.option("--keep-serving", is_flag=True, help="leave the sandboxes running afterwards (Ctrl-C stops)")
@_port_options
@click.option("--ui", is_flag=True, help="don't run the demo: open the Dagster UI on the state the last one left "
              "(its sandboxes and `dagster dev`; Ctrl-C stops both)")
def demo(data_dir: Path, scale: int, verbose: bool, api_call_limit: int, keep_serving: bool, ui: bool,
         **ports: int) -> None:
    """The whole product against the bundled sandboxes, end to end: starts the three sandboxes (ports 8470,
    8471, 8472; data in --data-dir, regenerated), runs the bulk import as a Dagster backfill, the transform, the
    plans and the writes, makes a few edits in each sandbox's UI (one a conflict) and lets the sync carry them
    across, timing each arrival. It says per step what happened; Dagster's log goes to .crm_pipelines/demo.log.
    Its Dagster instance is .dagster_home (PostgreSQL storage when DAGSTER_PG_* are set, else SQLite).

    \b
    Examples:
      crm-pipelines demo                 # what `make demo` runs
      crm-pipelines demo --scale 300     # smaller and quicker
      crm-pipelines demo --ui            # then: the Dagster UI on that state, http://127.0.0.1:3000
    """
    from crm_pipelines.demo import DEMO_DIR, DemoOptions, run_demo
    from crm_pipelines.demo_ui import serve_ui

    if ui:
        serve_ui(DEMO_DIR)
        return
    if not all(ports.values()):
        raise click.BadParameter("the demo's sandboxes need fixed ports (0 picks any): runs launched later from "
                                 "the UI must find them there")  # fmt: skip
    run_demo(DemoOptions(data_dir=data_dir, scale=scale, seed=DEFAULT_SEED, keep_serving=keep_serving,
                         verbose=verbose, api_call_limit=api_call_limit,
                         ports={k.removesuffix("_port"): v for k, v in ports.items()}))  # fmt: skip


_settings_option = click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="settings YAML (default: $CRM_PIPELINES_SETTINGS, else built-in defaults)",
)


def _load_settings(settings_path: str | None):
    """The settings, or a clear error naming the key path (and nothing else)."""
    from crm_pipelines.settings import SettingsError, load_settings

    try:
        return load_settings(settings_path)
    except SettingsError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@_settings_option
def sync(settings_path: str | None) -> None:
    """One pass of the sync on demand (issue 14), as the daemon runs it after a change: the change sensor's
    tick, the extracts it asks for, then unified, the plans and the writes, as Dagster runs on the instance in
    $DAGSTER_HOME (tagged crm_pipelines/trigger=on_demand). Exit status 1 if a run failed.

    \b
    Example:
      DAGSTER_HOME=$PWD/.dagster_home crm-pipelines sync --settings .crm_pipelines/demo.yaml"""
    import dagster as dg

    from crm_pipelines.defs.sync.run_now import sync_once

    _load_settings(settings_path)  # a settings error is named before anything runs
    with dg.DagsterInstance.get() as instance:
        done = sync_once(instance, settings_path, click.echo)
    for crm, meta in done.writes.items():
        click.echo(f"{crm:<11} {meta.get('writes')}: {meta.get('created', 0)} created, {meta.get('updated', 0)} "
                   f"updated, {meta.get('deleted', 0)} deleted, {meta.get('associated', 0)} associated, "
                   f"{meta.get('failed', 0)} refused, {meta.get('api_calls', 0)} API calls")
    for failure in done.failed:
        click.echo(f"FAILED: {failure}", err=True)
    if done.failed:
        sys.exit(1)


@main.command()
@_settings_option
def check(settings_path: str | None) -> None:
    """Check each configured connection's credentials against its API (OPS-3) and, once they are accepted, that
    the CRM has each lookup field the writes find their creates again by (issue 13): a line per field, with how
    to make one that is missing. No secret is printed; the exit status is 1 unless everything is there.

    \b
    Example:
      HUBSPOT_ACCESS_TOKEN=... crm-pipelines check --settings crm_pipelines.yaml"""
    from crm_pipelines.crm.check import check_connections, environment_secrets

    settings = _load_settings(settings_path)
    results = asyncio.run(check_connections(settings, environment_secrets()))
    for r in results:
        click.echo(f"{r.connection:<11} {'valid' if r.valid else 'INVALID':<8} ({r.target}) {r.reason}")
        for f in r.lookup_fields:
            name = f"lookup field {f.object}.{f.field}"
            if f.ok:
                click.echo(f"{r.connection:<11} {'present':<8} {name}")
                continue
            click.echo(f"{r.connection:<11} {f.verdict.upper():<8} {name}: {f.reason}")
            lead = "if it is missing, make it" if f.verdict == "unverified" else "to make it"
            click.echo(f"{'':<20} {lead}: {f.how_to_create}")
    if not all(r.ready for r in results):
        sys.exit(1)


@main.command()
@_settings_option
@click.option("--crm", type=click.Choice(["hubspot", "salesforce", "dynamics"]), default=None,
              help="one target CRM's plan (default: all three)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan(settings_path: str | None, crm: str | None, fmt: str) -> None:
    """What the sync would write to each CRM (a dry run, OPS-5), from the state database as it is: contacts,
    companies and deals to create (and those left out, with why), field updates of linked records old -> new
    with the rule that decided, associations to make, findings (unmapped stages), and the API calls against
    the 24 h budget (what does not fit is deferred).

    \b
    Examples:
      crm-pipelines plan --settings .crm_pipelines/demo.yaml --crm salesforce
      crm-pipelines plan --format json > plan.json"""
    from crm_pipelines.defs.writeback.assets import calls_table
    from crm_pipelines.defs.writeback.create_value_inputs import carried_values
    from crm_pipelines.defs.writeback.plan_inputs import budget_split
    from crm_pipelines.defs.writeback.stored_plan import stored_plans, update_plans
    from crm_pipelines.state.db import create_state_engine
    from crm_pipelines.sync.calls import calls_needed

    settings = _load_settings(settings_path)
    engine = create_state_engine(settings.state_database_url)
    update_plans(engine, settings)  # the stored plan, brought up to date first
    plans = stored_plans(engine)
    targets = [crm] if crm else ["hubspot", "salesforce", "dynamics"]

    def records(frame):
        return frame.astype(object).where(frame.notna(), None).to_dict("records")

    out = {}
    for target in targets:
        p = plans[target]
        p.create_values = carried_values(engine, settings, target, p.creates)  # not stored: read as written
        kept, deferred, left = budget_split(engine, settings, target, p.work())
        out[target] = {
            "creates": records(p.creates), "updates": records(p.updates), "associations": records(p.associations),
            "deletes": records(p.deletes), "create_values": records(p.create_values),
            "not_created": records(p.left_out), "not_deleted": records(p.not_deleted),
            "findings": records(p.findings),
            "counts": records(p.counts().reset_index()),
            "api_calls": {"planned": calls_needed(target, kept) + calls_needed(target, deferred),
                          "left_24h": left, "deferred": records(deferred),
                          "by_object": records(calls_table(target, kept, deferred))},
        }  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(out, default=str))
        return
    for target in targets:
        p, calls = plans[target], out[target]["api_calls"]
        click.echo(f"{target}: {len(p.creates)} to create, {len(p.updates)} field updates of linked records, "
                   f"{len(p.associations)} associations, {len(p.findings)} findings; {calls['planned']} API calls, "
                   f"{len(calls['deferred'])} records deferred "
                   f"(24 h calls left: {'no limit' if calls['left_24h'] is None else calls['left_24h']})")
        for row in out[target]["counts"]:
            click.echo("  " + "  ".join(f"{k} {v}" for k, v in row.items()))
        for r in p.creates.itertuples(index=False):
            where = f" in {r.pipeline} / {r.stage}" if isinstance(r.pipeline, str) else ""
            click.echo(f"  create {r.object:<8} {r.object_type:<12} from {r.source_crm} {r.source_id!s:<20} "
                       f"{r.detail or ''}{where}")
        for r in p.updates.itertuples(index=False):
            click.echo(f"  update {r.kind:<8} {r.record_id!s:<20} {r.field:<18} {r.old!s:>24} -> {r.new!s:<24} "
                       f"{r.decided_by}" + ("  [conflict]" if r.conflict else ""))
        for r in p.deletes.itertuples(index=False):
            click.echo(f"  delete {r.object:<8} {r.record_id!s:<20} {r.rule}")
        for r in p.associations.itertuples(index=False):
            click.echo(f"  associate {r.object:<16} {r.from_id} -> {r.to_id} via {r.via} (from {r.source_crm})")
        for reason, count in p.left_out["reason"].value_counts().items():
            click.echo(f"  not created: {count} ({reason})")
        for reason, count in p.findings["reason"].value_counts().items():
            click.echo(f"  finding: {count} ({reason})")


@main.command()
@_settings_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def usage(settings_path: str | None, fmt: str) -> None:
    """API calls of the last 24 h per connection against its limit (OPS-2), as the sync counts them in the
    state database: every process that shares it (the daemon's runs, this CLI, the benches) counts there,
    with or without a limit. A limit is set per connection as connections.<crm>.api_call_limit.

    \b
    Example:
      crm-pipelines usage --settings .crm_pipelines/demo.yaml
    """
    from crm_pipelines.usage import as_dicts, table
    from crm_pipelines.usage import usage as read_usage

    rows = read_usage(_load_settings(settings_path))
    if fmt == "json":
        click.echo(json.dumps(as_dicts(rows)))
        return
    for line in table(rows):
        click.echo(line)


@main.group("settings")
def settings_group() -> None:
    """The settings file's reference (issue 15)."""


@settings_group.command("reference")
@click.option("--write", is_flag=True, help="write docs/configuration.md (in a checkout) instead of printing")
def settings_reference(write: bool) -> None:
    """The configuration reference, generated from the settings model: every key as a dotted path, its type and
    allowed values, default, environment variable and meaning (Markdown).

    \b
    Example:
      crm-pipelines settings reference --write      # regenerate docs/configuration.md"""
    from crm_pipelines.settings import reference

    if not write:
        click.echo(reference.render(), nl=False)
        return
    if not reference.DOC.parent.is_dir():
        raise click.ClickException(f"{reference.DOC.parent} not found: --write needs a checkout of the repository")
    changed = reference.write(reference.DOC)
    click.echo(f"{reference.DOC}: {'written' if changed else 'already up to date'}")


@main.group()
def bench() -> None:
    """Benchmarks; the last line each prints is one JSON object of figures.

    \b
    Example:
      crm-pipelines bench sync --scale 100000 --database-url postgresql://postgres@127.0.0.1:5432/postgres"""


@bench.command("sandbox")
@click.option("--crm", type=click.Choice(["hubspot", "salesforce", "dynamics"]), default="hubspot", show_default=True)
@click.option("--scale", type=int, default=100_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
def bench_sandbox(crm: str, scale: int, seed: int) -> None:
    """Generate a universe, page every contact through the CRM's own paging over HTTP, report throughput."""
    from crm_pipelines.bench.sandbox_paging import run_paging_bench

    figures = asyncio.run(run_paging_bench(crm, scale, seed))
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("connectors")
@click.option("--scale", type=int, default=100_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
def bench_connectors(scale: int, seed: int) -> None:
    """Full read of each object of each CRM through the connectors, with the sandboxes' real rate limits.

    \b
    Per object: records, api_calls against min_api_calls, wall_s against bound_s (time_ratio = wall_s /
    bound_s), http_429. The bound counts every rate bucket the API offers for the read (HubSpot: the list
    endpoint's 10-second bucket and search's own); a bucket b allowing limit_b calls per period_b with pages
    of page_b records reads rate_b = page_b * limit_b / period_b records/s, and
      calls_b      = ceil(records * rate_b / sum(rate) / page_b)   (each bucket its share, full pages)
      min_api_calls = sum(calls_b)
      bound_s      = max over b of calls_b * period_b / limit_b    (about records / sum(rate))
    Salesforce's bound is its 24 h allocation (see bench/connectors_salesforce.py).
    """
    from crm_pipelines.bench.connectors import run_connectors_bench

    figures = asyncio.run(run_connectors_bench(scale, seed))
    for key, row in figures.items():
        click.echo(f"{key:28} {row}", err=True)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("extract")
@click.option("--scale", type=int, default=100_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--database-url", default=None, help="PostgreSQL URL; the bench works in its own new database there")
@click.option("--start-date", default=None, help="first daily partition (holds all older records); default: oldest")
def bench_extract(scale: int, seed: int, database_url: str | None, start_date: str | None) -> None:
    """The bulk import: a backfill of every partition against fresh sandboxes, into a fresh mirror."""
    from crm_pipelines.bench.extract import run_extract_bench

    figures = run_extract_bench(scale, seed, database_url, start_date)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("unified")
@click.option("--scale", type=int, default=100_000, show_default=True, help="people in the generated universe")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--database-url", default=None, help="PostgreSQL URL; the bench works in its own new database there")
def bench_unified(scale: int, seed: int, database_url: str | None) -> None:
    """Full `unified` from the stored mirror, then incremental after 1,000 edits across the CRMs."""
    from crm_pipelines.bench.unified import run_unified_bench

    figures = run_unified_bench(scale, seed, database_url)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("plan")
@click.option("--scale", type=int, default=100_000, show_default=True, help="people in the generated universe")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--database-url", default=None, help="PostgreSQL URL; the bench works in its own new database there")
def bench_plan(scale: int, seed: int, database_url: str | None) -> None:
    """The write-back plans on a first sync, then after 1,000 edits across the CRMs (API calls vs minimum)."""
    from crm_pipelines.bench.plan import run_plan_bench

    figures = run_plan_bench(scale, seed, database_url)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("writeback")
@click.option("--scale", type=int, default=100_000, show_default=True, help="people in the generated universe")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--database-url", default=None, help="PostgreSQL URL; the bench works in its own new database there")
def bench_writeback(scale: int, seed: int, database_url: str | None) -> None:
    """The write runs after 1 % of the records are edited across the CRMs on a converged sync, rate limits on.

    \b
    Set-up (rate limits lifted): import, full `unified`, plans and writes of a first sync, cycles until one
    writes nothing. Then, rate limits on, 1 % of each synced object's live records edited in the sandboxes'
    UIs, and sync cycles (sensor tick, extracts, `unified`, plans, one write run for the three CRMs) until one
    writes nothing. Of the write runs of the cycles that wrote:
      records_written  records the CRMs confirmed (created + updated + deleted)
      write_calls      API calls the sandboxes received during them (/__sandbox__/usage; logins apart)
      write_calls_min  sum over runs, CRMs, objects, operations of ceil(records sent / batch size)
                       (HubSpot 100, Salesforce 200, Dataverse $batch 1,000); calls_ratio target <= 1.2
      wall_s           the write runs' time, summed over the cycles
      bound_s          sum over cycles and CRMs (written one after another) of the CRM's calls /
                       its published sustained rate: HubSpot 19/s (190 per 10 s; searches 5/s on
                       their own), Salesforce 100,000 per 24 h, Dataverse 20/s (6,000 per 300 s);
                       time_ratio = wall_s / bound_s, target <= 1.3
      duplicates       records the sync made sharing an identity (email, key) with another live record
                       of their CRM, read through the APIs afterwards; must be 0
      failed           records refused in those runs, with failed_reasons; failed_outstanding: all still
                       refused at the end (set-up included)
    Details and the other keys: crm_pipelines/bench/writeback.py.
    """
    from crm_pipelines.bench.writeback import run_writeback_bench

    figures = run_writeback_bench(scale, seed, database_url)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("sync")
@click.option("--scale", type=int, default=100_000, show_default=True, help="people in the generated universe")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option(
    "--database-url",
    required=True,
    help="PostgreSQL URL; the bench makes its own new databases there (the state, the daemon's Dagster)",
)
@click.option("--duration-s", type=float, default=300, show_default=True, help="how long the edits go on")
@click.option("--edit-every-s", type=float, default=2, show_default=True, help="one edit every this many seconds")
@click.option("--idle-s", type=float, default=600, show_default=True, help="the idle phase, before the edits")
@click.option(
    "--drain-s",
    type=float,
    default=300,
    show_default=True,
    help="after the last edit, how long to wait at most for the stragglers (then again for quiet)",
)
@click.option(
    "--settle-s",
    type=float,
    default=None,
    help="no run for this long before the idle phase (default: the change sensor's busy spell after a change, "
    "plus an interval and 30 s, so the idle phase sees its idle pace)",
)
@click.option(
    "--drain-lag/--no-drain-lag",
    default=True,
    show_default=True,
    help="end the set-up with one extract of every object after the extracts' 5-minute safety lag, so the set-up's "
    "bulk writes are read again once before the daemon starts, not in the measured phases",
)
def bench_sync(
    scale: int,
    seed: int,
    database_url: str,
    duration_s: float,
    edit_every_s: float,
    idle_s: float,
    drain_s: float,
    settle_s: float | None,
    drain_lag: bool,
) -> None:
    """The sync loop as deployed (issue 14, OPS-1): the Dagster daemon alone, default settings, rate limits on.

    \b
    Set-up (rate limits lifted): import, a first sync, cycles until one writes nothing. Then rate limits on,
    `dagster-daemon run` on the bench's Dagster database; once it is settled (--settle-s), --idle-s with no
    edit, then one edit every --edit-every-s for --duration-s in the sandboxes' UIs (linked records, each
    once; contact first/last name, company name, deal name/amount/description; the source CRM in turn):
      edits                edits made; expected: those that should sync (each record is linked elsewhere)
      arrived              edits whose value was read back through the API of every CRM the record is
                           linked in besides the source
      latency_p50_s/_p95_s over (edit, target) pairs: from the UI's answer to the first read showing the
                           value (polled every 2 s); targets p50 < 20 s, p95 < 60 s; latency_by_route
      api_calls_per_edit   (calls the sandboxes received from the first edit until the loop is quiet again,
                           logins apart, less the bench's own reads, less idle_calls_per_hour over that
                           time) / edits
      idle_calls_per_hour  per connection: its calls during --idle-s (logins apart) * 3600 / idle_s
      duplicates           records the sync made sharing an identity (email, key) with another live record
                           of their CRM, read through the APIs afterwards; must be 0
      sensor_interval_s    the change sensor's interval in force while changes come (idle_interval_s: when
                           idle); runs_launched, runs_failed: the daemon's
    Details and the other keys: crm_pipelines/bench/sync.py.
    """
    from crm_pipelines.bench.sync import run_sync_bench

    options = {"duration_s": duration_s, "edit_every_s": edit_every_s, "idle_s": idle_s, "drain_s": drain_s,
               "settle_s": settle_s, "drain_lag": drain_lag}  # fmt: skip
    figures = run_sync_bench(scale, seed, database_url, options)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("soak")
@click.option("--scale", type=int, default=5_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="the sandboxes' data seed")
@click.option("--fault-seed", type=int, default=7, show_default=True, help="the sequence of injected faults")
@click.option("--database-url", default=None, help="PostgreSQL URL; the bench works in its own new databases there")
@click.option("--start-date", default=None, help="first daily partition (holds all older records); default: oldest")
@click.option(
    "--timeout-seconds", type=float, default=None, help="how long a sandbox holds a request it times out (default 30)"
)
def bench_soak(
    scale: int,
    seed: int,
    fault_seed: int,
    database_url: str | None,
    start_date: str | None,
    timeout_seconds: float | None,
) -> None:
    """The bulk import fault-free, then with every fault kind on (issue 18): failed runs, logins, time, and
    whether the mirror ends the same."""
    from crm_pipelines.bench.soak import run_soak_bench

    figures = run_soak_bench(scale, seed, fault_seed, database_url, start_date, timeout_seconds)
    sys.stdout.write(json.dumps(figures) + "\n")


@bench.command("transform")
@click.option("--contacts", type=int, default=1_000_000, show_default=True)
@click.option("--companies", type=int, default=300_000, show_default=True)
@click.option("--deals", type=int, default=500_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
def bench_transform(contacts: int, companies: int, deals: int, seed: int) -> None:
    """Full transform on generated mirror frames of that size, then an incremental one of 1,000 changes."""
    from crm_pipelines.bench.transform import run_transform_bench

    figures = run_transform_bench(contacts, companies, deals, seed)
    sys.stdout.write(json.dumps(figures, default=str) + "\n")


if __name__ == "__main__":
    main()

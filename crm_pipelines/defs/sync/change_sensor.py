"""``crm_change_sensor``: the sync loop's driver (issue 14, OPS-1). Each tick it polls the CRMs for changes
(one count call per object, ``defs/extract/sensors.poll_changes``) and requests, in ONE run, the extracts of
what changed followed by ``unified``, the plans and the writes: one run launch per change instead of one per
step, which is most of a change's latency. It also requests the chain alone when an extract ran outside it
(a bulk import, a backfill, a run from the UI) and ``unified`` is older than that.

Concurrency: the chain runs one at a time. While one runs, a tick that finds changes made since it started
queues the next one (at most one waits), and the run queue starts it when the running one ends
(``run_tags.ONE_CHAIN_AT_A_TIME`` in dagster.yaml's ``concurrency.runs``): a change made during a run waits
for that run's end, not for the next tick after it. On an instance without that rule the tick is skipped
instead, and the next tick after the run picks up what changed meanwhile.

A CRM a bulk import is reading (``busy.py``) is kept out of the chain's run: its
changed objects are extracted in a run of their own, which takes the connection's pool right after the import
step in progress (the sync's priority is higher), and nothing is written to it until the import is done, since
its mirror is incomplete and creates would duplicate records the import has not read yet. The other CRMs never
wait for it. A CRM not imported yet (no cursor) gets no writes either."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation at definition time.

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.defs.extract.sensors import REASON_TAG, poll_changes, polled_objects
from crm_pipelines.defs.resources import CrmConnections, StateDatabase
from crm_pipelines.defs.run_tags import CHAIN_TAG, SYNC_RUN_TAGS, connection_tags
from crm_pipelines.defs.sync.busy import busy_connections, chain_runs, chains_wait_their_turn
from crm_pipelines.defs.sync.chain import Chain, sync_chain
from crm_pipelines.defs.unified.assets import CONTACTS
from crm_pipelines.rules_doc import with_rule_refs
from crm_pipelines.settings import Settings

CHANGE_SENSOR = "crm_change_sensor"
# the steps of the loop's runs in the run's own process (``crm_pipelines/definitions.py``'s executor): they
# follow one another anyway, and a process per step would add its start to every change's latency
IN_PROCESS = {"execution": {"config": {"in_process": True}}}
# how long after a change the sensor keeps polling every ``sensor_interval_s`` before it slows to the idle pace
ACTIVE_FOR = timedelta(minutes=10)


@dataclass
class SyncTick:
    """What one tick requests, says about what it left, and whether a CRM reported a change."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    changed: bool = False


def poll_due(cursor: str | None, now: datetime, settings: Settings) -> bool:
    """Whether this tick asks the CRMs: at every tick while changes keep coming (one found in the last
    ``ACTIVE_FOR``), else once per ``idle_interval_s`` (ticks land up to half an interval late or early)."""
    pace = _pace(cursor)
    if "polled_at" not in pace:
        return True
    if pace.get("changed_at") and now - datetime.fromisoformat(pace["changed_at"]) < ACTIVE_FOR:
        return True
    idle = max(settings.extract.idle_interval_s, settings.extract.sensor_interval_s)
    return now - datetime.fromisoformat(pace["polled_at"]) >= timedelta(
        seconds=idle - settings.extract.sensor_interval_s / 2)


def _stale(instance: dg.DagsterInstance, extracts: Sequence[dg.AssetKey]) -> float | None:
    """The newest extract's time when it is newer than ``unified`` (an extract ran outside the chain), else None."""
    latest = instance.get_latest_materialization_events([*extracts, CONTACTS])
    newest = max((e.timestamp for k, e in latest.items() if e is not None and k != CONTACTS), default=None)
    unified = latest.get(CONTACTS)
    return newest if newest is not None and (unified is None or unified.timestamp < newest) else None


def _pace(cursor: str | None) -> dict:
    return json.loads(cursor) if cursor and cursor.startswith("{") else {}


def next_cursor(cursor: str | None, now: datetime, tick: SyncTick) -> str:
    """When the sensor last polled and last saw a change (its pace), and the run keys this tick requested."""
    changed_at = now.isoformat() if tick.changed else _pace(cursor).get("changed_at")
    return json.dumps({"polled_at": now.isoformat(), "changed_at": changed_at,
                       "requested": sorted(r.run_key or "" for r in tick.requests)})  # fmt: skip


def sync_requests(settings: Settings, chain: Chain, today: str, instance: dg.DagsterInstance,
                  state: StateDatabase, crm_connections: CrmConnections, queued: bool = True) -> SyncTick:
    """The runs one tick requests (the module's docstring says which). ``queued``: the caller submits them to the
    instance's run queue, as the daemon does; a caller that runs them itself (``crm-pipelines sync``) gets no
    chain run while one runs, since nothing would hold it back."""
    runs = chain_runs(instance)
    queue_next = (queued and runs.running_since is not None and not runs.waiting
                  and chains_wait_their_turn(instance))  # fmt: skip
    # while a chain runs, only what changed since it started is news: it reads the rest itself
    found = poll_changes(settings, today, state, crm_connections, runs.running_since if queue_next else None)
    changed = any("changed" in r.tags[REASON_TAG] for r in found.requests)
    objects = polled_objects(settings)
    crms = sorted({c for c, _ in objects})
    extracts = {crm: {dg.AssetKey([c, o]) for c, o in objects if c == crm} for crm in crms}
    busy = busy_connections(instance, extracts)
    said = [f"{c}.{o}: not imported yet (run the backfill first)" for c, o in found.not_imported]
    said += [f"{crm}: a bulk import is reading it; nothing is written to it until it is done" for crm in sorted(busy)]
    requests = []
    for crm in sorted(busy):  # its changes read now (after the import step in progress), on their own
        mine = [r for r in found.requests if r.asset_selection and r.asset_selection[0].path[0] == crm]
        if mine:
            keys = [k for r in mine for k in r.asset_selection or []]
            requests.append(dg.RunRequest(
                run_key="|".join(r.run_key or "" for r in mine), asset_selection=keys, partition_key=today,
                run_config=IN_PROCESS,
                tags={**SYNC_RUN_TAGS, **connection_tags([crm]), REASON_TAG: _reasons(mine)}))  # fmt: skip
    if runs.waiting or (runs.running_since is not None and not queue_next):
        return SyncTick(requests, [*said, "a sync run is in progress; what changed meanwhile goes in the next one"],
                        changed)
    ready = [r for r in found.requests if r.asset_selection and r.asset_selection[0].path[0] not in busy
             # a deletion sweep that came due is the running chain's to make, unless it has changes to read too
             and (not queue_next or "changed" in r.tags[REASON_TAG])]  # fmt: skip
    # a running chain's extracts are newer than its unified until it gets there: not an extract outside the sync
    stale = None if queue_next else _stale(instance, [k for keys in extracts.values() for k in keys])
    if not ready and stale is None:
        return SyncTick(requests, said, changed)
    not_imported = {c for c, _ in found.not_imported}
    targets = [crm for crm in chain.writes if crm in crms and crm not in busy | not_imported]
    assets, checks = chain.selection(targets)
    keys = [k for r in ready for k in r.asset_selection or []]
    reason = _reasons(ready) if ready else "an extract ran outside the sync"
    requests.append(dg.RunRequest(
        # the positions it reads from and the newest extract it follows: a racing tick cannot start it twice
        run_key="|".join([*(r.run_key or "" for r in ready), f"after:{stale}", f"to:{','.join(targets)}"]),
        asset_selection=[*keys, *assets], asset_check_keys=checks, partition_key=today if keys else None,
        run_config=IN_PROCESS,
        tags={**SYNC_RUN_TAGS, CHAIN_TAG: "true", **connection_tags(crms), REASON_TAG: reason}))  # fmt: skip
    return SyncTick(requests, said, changed)


def _reasons(requests: Sequence[dg.RunRequest]) -> str:
    return ", ".join(f"{'.'.join(r.asset_selection[0].path)} {r.tags[REASON_TAG]}" for r in requests
                     if r.asset_selection)  # fmt: skip


def build_sync_sensor(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.SensorDefinition:
    chain = sync_chain(settings)
    objects = polled_objects(settings)
    targets = [dg.AssetKey([c, o]) for c, o in objects] + chain.selection(list(chain.writes))[0]

    @dg.sensor(
        name=CHANGE_SENSOR,
        minimum_interval_seconds=settings.extract.sensor_interval_s,
        asset_selection=dg.AssetSelection.assets(*targets),
        default_status=dg.DefaultSensorStatus.RUNNING,  # on when deployed (issue 14); the README says how to pause
        description=with_rule_refs(
            "The sync loop (OPS-1): polls each CRM for changes (every extract.sensor_interval_s while changes come, "
            "extract.idle_interval_s when idle) and runs, in one run, the extracts of what changed, unified, the plans "
            "and the writes (OPS-10: only where writes are on). What changes while such a run runs goes in the next "
            "one, queued to start when it ends. Its runs are tagged crm_pipelines/kind=incremental_sync"
        ),
    )
    def crm_change_sensor(
        context: dg.SensorEvaluationContext, state: StateDatabase, crm_connections: CrmConnections
    ) -> dg.SensorResult:
        now = datetime.now(UTC)
        if not poll_due(context.cursor, now, settings):
            return dg.SensorResult(skip_reason="idle: the next poll is due after extract.idle_interval_s")
        tick = sync_requests(settings, chain, partitions_def.get_last_partition_key(), context.instance, state,
                             crm_connections)  # fmt: skip
        for line in tick.said:
            context.log.info(line)
        return dg.SensorResult(run_requests=tick.requests, cursor=next_cursor(context.cursor, now, tick))

    return crm_change_sensor

"""Issue 14 / OPS-1, OPS-2: the change sensor's pace. While changes keep coming it polls the CRMs at every tick
(``extract.sensor_interval_s``, the latency); ten minutes after the last change it polls once per
``extract.idle_interval_s``, which sets what an idle sync costs in API calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from crm_pipelines.defs.sync.change_sensor import ACTIVE_FOR, SyncTick, next_cursor, poll_due
from crm_pipelines.settings.model import Settings

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SETTINGS = Settings.model_validate({"extract": {"sensor_interval_s": 15, "idle_interval_s": 60}})


def _cursor(polled_ago: float, changed_ago: float | None) -> str:
    tick = SyncTick(changed=changed_ago is not None)
    cursor = next_cursor(None, NOW - timedelta(seconds=changed_ago or 0), tick) if changed_ago is not None else None
    return next_cursor(cursor, NOW - timedelta(seconds=polled_ago), SyncTick())


def test_ops1_the_first_tick_and_every_tick_after_a_recent_change_polls() -> None:
    assert poll_due(None, NOW, SETTINGS)
    assert poll_due(_cursor(15, 300), NOW, SETTINGS)  # a change five minutes ago: keep the fast pace


def test_ops2_an_idle_sync_polls_once_per_idle_interval() -> None:
    quiet = (ACTIVE_FOR + timedelta(minutes=1)).total_seconds()
    assert not poll_due(_cursor(15, quiet), NOW, SETTINGS)
    assert not poll_due(_cursor(30, None), NOW, SETTINGS)
    assert poll_due(_cursor(55, None), NOW, SETTINGS)  # the 60 s poll, on the tick nearest to it
    assert poll_due(_cursor(61, quiet), NOW, SETTINGS)


def test_the_pace_remembers_the_last_change_across_quiet_polls() -> None:
    changed = next_cursor(None, NOW - timedelta(minutes=5), SyncTick(changed=True))
    quiet = next_cursor(changed, NOW - timedelta(seconds=15), SyncTick(requests=[dg.RunRequest(run_key="k")]))
    assert poll_due(quiet, NOW, SETTINGS)  # the quiet poll kept the change's time
    later = NOW + ACTIVE_FOR  # the change is now more than ACTIVE_FOR old
    assert not poll_due(next_cursor(quiet, later - timedelta(seconds=15), SyncTick()), later, SETTINGS)

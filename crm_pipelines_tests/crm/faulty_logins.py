"""Helpers for the issue 18 tests: the sandboxes' own fault injection, on a virtual clock, switched off once
a login has met the faults a test wants it to meet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.sandbox.conftest import RunningSandbox

# Each fault kind the sandboxes inject, and how the connector meters the attempt it spoils.
KINDS: dict[str, int | str] = {
    "rate_429": 429,
    "rate_500": 500,
    "rate_503": 503,
    "rate_timeout": "timeout",
    "rate_drop": "dropped",
    "rate_malformed": "malformed",
}
# The soak's mix (issue 18): 38 % of calls fail, each kind at its own rate.
SOAK_MIX = {
    "rate_429": 0.10,
    "rate_500": 0.10,
    "rate_503": 0.05,
    "rate_timeout": 0.03,
    "rate_drop": 0.05,
    "rate_malformed": 0.05,
}
# A hung request is given up on after a second, the next after four (each retry after a timeout waits four
# times longer); the sandbox holds it for HELD_S, longer than both, so two timeouts in a row are two timeouts
# on the client's side. Backoff is virtual.
FAST = {"timeout_s": 1.0}
HELD_S = 6.0


def set_faults(sandbox: RunningSandbox, **config: object) -> None:
    with sandbox.admin() as admin:
        admin.put("/faults", json=config).raise_for_status()


class VirtualTime:
    """The client's waits (backoff, Retry-After, rate windows) on a clock that jumps instead of sleeping;
    ``hooks`` run at each wait (while the client waits, the server may change its mind)."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.slept: list[float] = []
        self.hooks: list[Callable[[], None]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for hook in self.hooks:
            hook()
        await asyncio.sleep(0)


def failing(sandbox: RunningSandbox, kind: str, path_prefix: str, meter: Meter, endpoint: str, failures: int):
    """Every call under ``path_prefix`` meets ``kind`` until ``endpoint`` has failed ``failures`` times; then
    the sandbox is well again. Returns the hook for :class:`VirtualTime`."""
    set_faults(sandbox, **{kind: 1.0}, path_prefix=path_prefix, timeout_seconds=HELD_S)
    done = False

    def hook() -> None:
        nonlocal done
        if not done and sum(1 for s in statuses(meter, endpoint) if s != 200) >= failures:
            set_faults(sandbox)
            done = True

    return hook


def statuses(meter: Meter, endpoint: str) -> list[int | str]:
    return [c.status for c in meter.calls if c.endpoint == endpoint]

"""Client-side rate limits sized from each API's published limits, so a well-behaved sync never sees a 429.

A limit is "at most ``calls`` in any ``period_s``" (a rolling window, the way HubSpot and Dataverse count),
kept as the times of the last ``calls`` requests. The server counts a request when it arrives, somewhere
between our sending it and its answer; we count it from the middle of that round trip. That is never
before the server's count when the request travels no slower than its answer (the server's own work only
moves the arrival earlier than the middle). Counting from the answer would hold against any asymmetry
but idles the budget a whole round trip per window (a tenth of HubSpot's search rate at 100 ms); the
middle idles half of one. A rare 429 is still honoured (``pause``). Requests also pass a concurrency bound.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# How long after its stamp the server may count a call: at most a round trip (answers took up to 0.6 s on a
# loaded machine, measured at 100k); see ``_RollingWindow.holds_full``.
SKEW_S = 1.0


@dataclass(frozen=True)
class Window:
    calls: int
    period_s: float


@dataclass(frozen=True)
class RateLimits:
    """Windows per bucket (e.g. ``default`` and HubSpot's ``search``), plus the concurrency the API allows."""

    buckets: dict[str, tuple[Window, ...]] = field(default_factory=dict)
    max_concurrency: int = 4
    # Added to every window: the server's clock and ours start windows at slightly different instants.
    margin_s: float = 0.02

    def scaled(self, multiplier: float) -> RateLimits:
        """The same limits with every call count times ``multiplier`` (tests and lifted-limit runs)."""
        return RateLimits(
            {
                b: tuple(Window(max(1, int(w.calls * multiplier)), w.period_s) for w in ws)
                for b, ws in self.buckets.items()
            },
            self.max_concurrency,
            self.margin_s,
        )


class _RollingWindow:
    def __init__(self, window: Window, margin_s: float) -> None:
        self.window = window
        self.calls, self.period = window.calls, window.period_s + margin_s
        self.sent: deque[list[float]] = deque()  # one-element lists: restamped in place on completion
        self.blocked_until = 0.0
        self.reported: tuple[float, int] | None = None  # (when, calls left) as the API's last answer said

    def may_be_full(self, now: float, in_flight: int) -> bool:
        """Whether the server's window can be spent: True unless the API reported, within the window's
        period, more calls left than this process has sent since plus ``in_flight`` (answers still on their way,
        which the server may have counted before its report)."""
        if self.reported is None or self.reported[0] <= now - self.period:
            return True
        at, left = self.reported
        sent_since = sum(1 for stamp in self.sent if stamp[0] >= at)
        return left - sent_since - in_flight <= 0

    def holds_full(self, now: float) -> bool:
        """Whether this process alone has spent the window: its own pacing already waits for the oldest
        call to age out. A call aged out of our window up to ``SKEW_S`` ago still counts: a server busy with
        other answers counts a request when it gets to it, which can be after the middle of its round trip,
        so its window may still hold a call ours has let go. Holding the bucket a whole period for that (10 s
        on HubSpot's default bucket) costs far more than the short Retry-After of a rare 429 (issue 17)."""
        return sum(1 for stamp in self.sent if stamp[0] > now - self.period - SKEW_S) >= self.calls

    def delay(self, now: float) -> float:
        while self.sent and self.sent[0][0] <= now - self.period - SKEW_S:
            self.sent.popleft()  # kept SKEW_S past the window for ``holds_full``
        wait = self.blocked_until - now
        if len(self.sent) >= self.calls:  # only then can the window be full: a day's window holds every call
            live = [stamp[0] for stamp in self.sent if stamp[0] > now - self.period]
            if len(live) >= self.calls:
                wait = max(wait, min(live) + self.period - now)
        return max(wait, 0.0)


# Window state per connection and API, shared by every client of this process: a Dagster run opens a client
# per asset step, and a fresh, empty window would send a burst the server still counts against the last step.
_SHARED_WINDOWS: dict[tuple[str, ...], dict[str, list[_RollingWindow]]] = {}
# The concurrency bound likewise, per event loop (a semaphore belongs to one): a step that reads a CRM's
# objects side by side opens a client per object, and together they stay within the API's concurrency.
_SHARED_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


class RateLimiter:
    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared_key: tuple[str, str] | None = None,
    ) -> None:
        self.limits, self._clock, self.sleep = limits, clock, sleep
        shared = shared_key is not None and clock is time.monotonic  # injected clocks keep their own state
        self._windows = (
            _SHARED_WINDOWS.setdefault((*shared_key, repr(limits)), self._fresh()) if shared else self._fresh()
        )
        # One queue per bucket: a call sleeping out one bucket's window or pause (a ten-secondly 429 holds
        # HubSpot's default bucket for 10 s) must not hold up this client's calls in another bucket (its
        # searches, on their own per-second limit, FACTS §2); issue 18.
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots_key = (*shared_key, str(limits.max_concurrency)) if shared_key is not None else None
        self._own_slots: asyncio.Semaphore | None = None
        self.waited_s = 0.0

    @property
    def concurrency(self) -> asyncio.Semaphore:
        """Slots for requests in flight: shared by the connection's clients on this event loop."""
        if self._slots_key is None:
            if self._own_slots is None:
                self._own_slots = asyncio.Semaphore(self.limits.max_concurrency)
            return self._own_slots
        slots = _SHARED_SLOTS.setdefault(asyncio.get_running_loop(), {})
        if self._slots_key not in slots:
            slots[self._slots_key] = asyncio.Semaphore(self.limits.max_concurrency)
        return slots[self._slots_key]

    def _fresh(self) -> dict[str, list[_RollingWindow]]:
        return {b: [_RollingWindow(w, self.limits.margin_s) for w in ws] for b, ws in self.limits.buckets.items()}

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        # another time source cannot share windows stamped by the real clock
        self._clock, self._windows = clock, self._fresh()

    async def acquire(self, bucket: str = "default") -> list[list[float]]:
        """Wait until one more request fits every window of ``bucket``; returns its stamps for ``complete``."""
        if not self._windows.get(bucket):
            bucket = "default"  # a bucket without limits of its own counts in the default one
        windows = self._windows.get(bucket, [])
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            while True:
                now = self.clock()
                wait = max((w.delay(now) for w in windows), default=0.0)
                if wait <= 0:
                    stamps = []
                    for w in windows:
                        stamp = [now]
                        w.sent.append(stamp)
                        stamps.append(stamp)
                    return stamps
                self.waited_s += wait
                await self.sleep(wait)

    def restamp(self, stamps: list[list[float]]) -> None:
        """The request is only now leaving (``acquire`` returned a while ago): count it from now. Later stamps
        only make the windows wait longer, so this never lets a call through early."""
        now = self.clock()
        for stamp in stamps:
            stamp[0] = max(stamp[0], now)

    def complete(self, stamps: list[list[float]]) -> None:
        """The answer arrived: count the request from the middle of its round trip."""
        now = self.clock()
        for stamp in stamps:
            stamp[0] = (stamp[0] + now) / 2

    def observe(self, bucket: str, remaining: int, period_s: float) -> None:
        """The API's answer said how many calls its window of ``period_s`` has left (HubSpot's
        X-HubSpot-RateLimit-Remaining and -Interval-Milliseconds): kept on the bucket's window of that period."""
        now = self.clock()
        for w in self._windows.get(bucket) or self._windows.get("default", []):
            if abs(w.window.period_s - period_s) < 1e-6:
                w.reported = (now, remaining)

    def may_be_full(self, bucket: str) -> bool:
        """Whether a 429 on ``bucket`` can be its window's: see :meth:`_RollingWindow.may_be_full`. A bucket
        whose API reports nothing (HubSpot's search, Salesforce, Dataverse) can always be full."""
        now = self.clock()
        windows = self._windows.get(bucket) or self._windows.get("default", [])
        return any(w.may_be_full(now, self.limits.max_concurrency) for w in windows) or not windows

    def spent(self, bucket: str, period_s: float) -> None:
        """The API said its window of ``period_s`` has no calls left, though this call succeeded (HubSpot's
        X-HubSpot-RateLimit-Remaining: 0). When this process sent a full window's calls itself, that is its
        own pacing at the limit and the limiter already waits for the oldest to age out; otherwise others
        share the window (another process, another app of the account): hold the bucket for the period.
        At a steady full rate the window is spent after nearly every call, and a pause each time would halve
        the rate (issue 17)."""
        now = self.clock()
        windows = self._windows.get(bucket) or self._windows.get("default", [])
        matching = [w for w in windows if abs(w.window.period_s - period_s) < 1e-6]
        if matching and all(w.holds_full(now) for w in matching):
            return
        self.pause(bucket, period_s)

    def pause(self, bucket: str, seconds: float) -> None:
        """The server said to slow down (a 429 or a zero remaining-calls header): hold the bucket."""
        until = self.clock() + seconds
        for w in self._windows.get(bucket) or self._windows.get("default", []):
            w.blocked_until = max(w.blocked_until, until)

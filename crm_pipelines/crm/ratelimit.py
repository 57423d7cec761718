"""Client-side rate limits sized from each API's published limits, so a well-behaved sync never sees a 429.

A limit is "at most ``calls`` in any ``period_s``" (a rolling window, the way HubSpot and Dataverse count),
kept as the send times of the last ``calls`` requests. Requests also pass a concurrency bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


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
    margin_s: float = 0.05

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
        self.calls, self.period = window.calls, window.period_s + margin_s
        self.sent: deque[float] = deque()
        self.blocked_until = 0.0

    def delay(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.period:
            self.sent.popleft()
        wait = self.blocked_until - now
        if len(self.sent) >= self.calls:
            wait = max(wait, self.sent[0] + self.period - now)
        return max(wait, 0.0)


class RateLimiter:
    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits, self.clock, self.sleep = limits, clock, sleep
        self._windows = {b: [_RollingWindow(w, limits.margin_s) for w in ws] for b, ws in limits.buckets.items()}
        self._lock = asyncio.Lock()
        self.concurrency = asyncio.Semaphore(limits.max_concurrency)
        self.waited_s = 0.0

    async def acquire(self, bucket: str = "default") -> None:
        """Wait until one more request fits every window of ``bucket`` and record it as sent."""
        windows = self._windows.get(bucket) or self._windows.get("default", [])
        async with self._lock:
            while True:
                now = self.clock()
                wait = max((w.delay(now) for w in windows), default=0.0)
                if wait <= 0:
                    for w in windows:
                        w.sent.append(now)
                    return
                self.waited_s += wait
                await self.sleep(wait)

    def pause(self, bucket: str, seconds: float) -> None:
        """The server said to slow down (a 429 or a zero remaining-calls header): hold the bucket."""
        until = self.clock() + seconds
        for w in self._windows.get(bucket) or self._windows.get("default", []):
            w.blocked_until = max(w.blocked_until, until)

"""Counting primitives for the published rate limits each sandbox enforces."""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float = 0.0


@dataclass
class RollingWindow:
    """At most ``limit`` accepted calls in any ``window_s`` seconds (rejected calls are not counted)."""

    limit: int
    window_s: float
    _stamps: deque[float] = field(default_factory=deque)

    def acquire(self, now: float) -> Decision:
        while self._stamps and self._stamps[0] <= now - self.window_s:
            self._stamps.popleft()
        if len(self._stamps) >= self.limit:
            retry = self._stamps[0] + self.window_s - now
            return Decision(False, self.limit, 0, max(retry, 0.001))
        self._stamps.append(now)
        return Decision(True, self.limit, self.limit - len(self._stamps))


@dataclass
class DailyCounter:
    """At most ``limit`` calls per UTC calendar day (HubSpot resets at midnight in the account's zone)."""

    limit: int
    _day: dt.date | None = None
    _used: int = 0

    def acquire(self, now: float) -> Decision:
        day = dt.datetime.fromtimestamp(now, dt.UTC).date()
        if day != self._day:
            self._day, self._used = day, 0
        if self._used >= self.limit:
            midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
            return Decision(False, self.limit, 0, midnight - now)
        self._used += 1
        return Decision(True, self.limit, self.limit - self._used)


def scaled(limit: int, multiplier: float) -> int:
    """A published limit scaled for a test, never below one call."""
    return max(1, math.floor(limit * multiplier))

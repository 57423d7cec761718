"""Dataverse service protection limits, per user over a 300 s sliding window (FACTS §H).

Three limits, checked in this order: concurrent requests (52), number of requests (6,000) and combined
execution time (1,200,000 ms). Exceeding one answers 429 with ``Retry-After`` (seconds) and the documented
error code; successful answers carry the ``x-ms-ratelimit-*-xrm-requests`` headers.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import (
    CONCURRENT_REQUESTS,
    EXECUTION_MS_PER_WINDOW,
    REQUESTS_PER_WINDOW,
    WINDOW_S,
)
from crm_pipelines.sandbox.faults import FaultConfig
from crm_pipelines.sandbox.ratelimit import RollingWindow, scaled


def throttled(code: str, message: str, retry_after_s: float) -> errors.DataverseError:
    return errors.DataverseError(429, code, message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})


def requests_exceeded(limit: int = REQUESTS_PER_WINDOW, retry_after_s: float = WINDOW_S) -> errors.DataverseError:
    return throttled(errors.REQUESTS_EXCEEDED,
                     f"Number of requests exceeded the limit of {limit} over time window of {WINDOW_S} seconds.",
                     retry_after_s)


@dataclass
class _User:
    requests: RollingWindow
    execution: deque[tuple[float, float]] = field(default_factory=deque)  # (finished at, milliseconds)
    in_flight: int = 0


class ServiceProtection:
    def __init__(self) -> None:
        self.config = FaultConfig()
        self._users: dict[str, _User] = {}
        self._in_flight: dict[str, int] = defaultdict(int)

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._users.clear()

    def _limit(self, published: int) -> int:
        return scaled(published, self.config.rate_limit_multiplier)

    def _user(self, user: str) -> _User:
        if user not in self._users:
            self._users[user] = _User(RollingWindow(self._limit(REQUESTS_PER_WINDOW), WINDOW_S))
        return self._users[user]

    def enter(self, user: str) -> dict[str, str]:
        """Admit a request (raise the 429 otherwise); returns the headers for its answer."""
        if not self.config.rate_limits_enabled:
            return {}
        u = self._user(user)
        now = time.monotonic()
        concurrent = self._limit(CONCURRENT_REQUESTS)
        if u.in_flight >= concurrent:
            raise throttled(errors.CONCURRENCY_EXCEEDED,
                            f"Number of concurrent requests exceeded the limit of {concurrent}.", 1)
        budget = self._limit(EXECUTION_MS_PER_WINDOW)
        while u.execution and u.execution[0][0] <= now - WINDOW_S:
            u.execution.popleft()
        used = sum(ms for _, ms in u.execution)
        if used >= budget:
            # Wait until enough of the window's execution time has aged out.
            excess, retry = used - budget, WINDOW_S
            for finished, ms in u.execution:
                excess -= ms
                if excess < 0:
                    retry = finished + WINDOW_S - now
                    break
            raise throttled(
                errors.EXECUTION_TIME_EXCEEDED,
                f"Combined execution time of incoming requests exceeded limit of {budget:,} milliseconds over time "
                f"window of {WINDOW_S} seconds. Decrease number of concurrent requests or reduce the duration of "
                "requests and try again later.", retry)
        d = u.requests.acquire(now)
        if not d.allowed:
            raise requests_exceeded(d.limit, d.retry_after_s)
        u.in_flight += 1
        return {"x-ms-ratelimit-burst-remaining-xrm-requests": str(d.remaining),
                "x-ms-ratelimit-time-remaining-xrm-requests": f"{budget - used:.2f}"}

    def leave(self, user: str, elapsed_ms: float) -> None:
        if not self.config.rate_limits_enabled or user not in self._users:
            return
        u = self._users[user]
        u.in_flight = max(0, u.in_flight - 1)
        u.execution.append((time.monotonic(), elapsed_ms))

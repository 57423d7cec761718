"""The org's daily API request allocation over a rolling 24 hours, as the header and /limits report it (FACTS §4)."""

from __future__ import annotations

import time
from collections import deque

from crm_pipelines.sandbox.faults import FaultConfig
from crm_pipelines.sandbox.ratelimit import scaled
from crm_pipelines.sandbox.salesforce.catalog import DAILY_API_REQUESTS

WINDOW_S = 24 * 3600


class ApiUsage:
    """Counts every REST call; refuses them once the allocation is spent (unless limits are lifted)."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._stamps: deque[float] = deque()

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._stamps.clear()

    @property
    def allocation(self) -> int:
        return self.config.daily_limit or scaled(DAILY_API_REQUESTS, self.config.rate_limit_multiplier)

    def used(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        while self._stamps and self._stamps[0] <= now - WINDOW_S:
            self._stamps.popleft()
        return len(self._stamps)

    def acquire(self) -> bool:
        """Count one call; False when the allocation is already spent (the call is refused, not counted)."""
        now = time.time()
        if self.config.rate_limits_enabled and self.used(now) >= self.allocation:
            return False
        self._stamps.append(now)
        return True

    def header(self) -> str:
        return f"api-usage={self.used()}/{self.allocation}"

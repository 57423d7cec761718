"""The user's API call limit per connection (OPS-2) as the connectors see it.

The count lives in a ledger shared by every process (``crm_pipelines.state.api_usage.SqlCallLedger``);
this side leases calls from it in small blocks so that a read of thousands of pages costs a ledger
transaction per block, not per call, and hands back what it did not use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from crm_pipelines.crm.errors import BudgetExhausted


class Lease(Protocol):
    granted: int
    minute: int
    retry_at: float | None


class CallLedger(Protocol):
    def reserve(self, connection: str, calls: int, limit: int | None, now: float) -> Lease: ...

    def release(self, connection: str, calls: int, minute: int) -> None: ...

    def used(self, connection: str, now: float) -> int: ...


class CallBudget:
    """Spends calls against ``limit`` per rolling 24 h; ``limit=None`` means the user set none, and the calls
    are still counted in the ledger when there is one (usage is shown whether or not a limit is set).

    When the limit is spent, ``spend()`` either waits until calls fit again (``max_wait_s`` allowing) or
    raises ``BudgetExhausted`` so the caller defers the work. It never lets a call through over the limit.
    """

    def __init__(
        self,
        connection: str,
        limit: int | None = None,
        ledger: CallLedger | None = None,
        *,
        lease: int = 20,
        max_wait_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit is not None and ledger is None:
            raise ValueError("an API call limit needs a ledger to count in")
        self.connection, self.limit, self.ledger = connection, limit, ledger
        self.lease_size, self.max_wait_s, self.clock, self.sleep = lease, max_wait_s, clock, sleep
        self._held: list[tuple[int, int]] = []  # (minute, calls) leased and not yet spent
        self._lock = asyncio.Lock()
        self.spent = 0

    async def spend(self) -> None:
        if self.ledger is None:
            self.spent += 1
            return
        async with self._lock:
            while not self._held:
                lease = await asyncio.to_thread(
                    self.ledger.reserve, self.connection, self.lease_size, self.limit, self.clock()
                )
                if lease.granted:
                    self._held.append((lease.minute, lease.granted))
                    break
                assert lease.retry_at is not None
                wait = lease.retry_at - self.clock()
                if wait > self.max_wait_s:
                    raise BudgetExhausted(self.connection, self.limit, lease.retry_at)
                await self.sleep(max(wait, 0.0))
            minute, calls = self._held[-1]
            if calls == 1:
                self._held.pop()
            else:
                self._held[-1] = (minute, calls - 1)
            self.spent += 1

    def close(self) -> None:
        """Return leased calls that were not made, so other processes can use them."""
        if self.ledger is not None:
            for minute, calls in self._held:
                self.ledger.release(self.connection, calls, minute)
        self._held.clear()

    def used_last_24h(self) -> int | None:
        return None if self.ledger is None else self.ledger.used(self.connection, self.clock())

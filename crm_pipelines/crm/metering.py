"""Every HTTP attempt a connector makes, so runs can report the API calls they used and how they went."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CallRecord:
    connection: str
    method: str
    endpoint: str  # the route template, e.g. "GET /crm/v3/objects/{type}", never a URL with values
    status: int | str  # HTTP status, or the transport failure ("timeout", "dropped", "malformed")
    duration_s: float
    attempt: int


@dataclass
class Meter:
    calls: list[CallRecord] = field(default_factory=list)

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    def count(self, *, connection: str | None = None, endpoint: str | None = None) -> int:
        return sum(
            1
            for c in self.calls
            if (connection is None or c.connection == connection) and (endpoint is None or c.endpoint == endpoint)
        )

    def statuses(self, connection: str | None = None) -> Counter:
        return Counter(c.status for c in self.calls if connection is None or c.connection == connection)

    def summary(self) -> dict[str, dict[str, int]]:
        """Calls per connection and endpoint, for run metadata."""
        out: dict[str, dict[str, int]] = {}
        for c in self.calls:
            per = out.setdefault(c.connection, {})
            per[c.endpoint] = per.get(c.endpoint, 0) + 1
        return out

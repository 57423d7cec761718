"""One per-record write outcome for the three connectors (OPS-6), and the verbs every client offers.

The writes stage speaks to any CRM the same way: ``create``, ``update``, ``upsert``, ``delete`` (and ``find``,
a look-up by a field) on a
catalog object, with plain ``field -> value`` records in the API's own field names, and one
``WriteOutcome`` per input in input order. A record the API refused carries the API's code and text, and
never fails the others; text cut to the target's length is named in ``truncated`` (OPS-9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Status = Literal["created", "updated", "deleted", "failed"]


@dataclass(frozen=True)
class WriteOutcome:
    """What became of one input of a write, by its position in the caller's list."""

    index: int
    ok: bool
    id: str | None = None
    created: bool | None = None  # True: a new record; False: an existing one (upsert); None: not known
    code: str | None = None  # the API's error code (or a local one when the record was never sent)
    message: str | None = None  # the API's error text
    fields: tuple[str, ...] = ()  # the fields the error names, where the API says
    truncated: tuple[Any, ...] = field(default=(), compare=False)  # values cut to the target's length
    record: dict[str, Any] = field(default_factory=dict, compare=False)  # the record as the API returned it

    @property
    def new(self) -> bool | None:
        return self.created


def status(outcome: WriteOutcome, operation: str) -> Status:
    if not outcome.ok:
        return "failed"
    if operation == "delete":
        return "deleted"
    return "created" if outcome.created or operation == "create" else "updated"


class Writer(Protocol):
    """The verbs each client implements (``HubSpotClient``, ``SalesforceClient``, ``DynamicsClient``)."""

    async def create(self, obj: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]: ...

    async def update(self, obj: str, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[WriteOutcome]: ...

    async def upsert(self, obj: str, key_field: str, records: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        """Create or update by ``key_field`` (an email, an external-id field, an alternate key): each record
        carries its value."""
        ...

    async def delete(self, obj: str, ids: Sequence[str]) -> list[WriteOutcome]: ...

    async def find(self, obj: str, field: str, values: Sequence[str]) -> dict[str, str]:
        """Lower-cased value of ``field`` -> the id of a record holding it (a create in doubt is looked for by
        its lookup field before it is sent again)."""
        ...

"""What extraction needs from each CRM object, whatever the API: windows, counts, deletions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from crm_pipelines.state.mirror import MirrorRow


@dataclass(frozen=True)
class AssociationBatch:
    """Links re-read for a batch of records: ``rows`` become the whole live content of the id ``groups``."""

    groups: list[str]
    rows: list[MirrorRow]


@dataclass(frozen=True)
class Deletion:
    id: str
    deleted_at: datetime | None


class ObjectSource(Protocol):
    crm: str
    obj: str
    partitioned: bool  # False for small reference objects (pipelines, owners …) read whole every time

    def read_window(self, start: datetime, end: datetime) -> AsyncIterator[list[MirrorRow]]:
        """Records whose modification time lies in [start, end), in pages."""
        ...

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        """The CRM's own count of records modified in [start, end) (OPS-7), or None if it offers none."""
        ...

    async def deleted_since(self, since: datetime) -> list[Deletion]:
        """Records deleted at or after ``since``."""
        ...


def with_fields(standard: list[str], extra: tuple[str, ...]) -> list[str]:
    """An object's standard field list and then the fields the settings name that it lacks (custom mappings,
    rollup targets: ``defs/extract/settings_fields.py``)."""
    return [*standard, *(f for f in extra if f not in standard)]

"""The sandboxes' clock, and a person's edit made at a given time (``?at=`` on the ``/__sandbox__/ui`` endpoints).

Conflict rules depend on when each side changed (CONF-1: two changes within 5 minutes are a conflict, further
apart the later wins); a test cannot wait ten minutes between two edits, so a UI edit may say when it was
made. Only the UI endpoints accept it: the API always stamps the real time, as the CRMs do. Within such a
request every time the sandbox stamps (HubSpot's ``lastmodifieddate`` and property history, Salesforce's
``LastModifiedDate``/``SystemModstamp``, Dynamics' ``modifiedon``) is that time instead of now.

A context variable rather than a global: requests are handled concurrently, and an edit at a given time must
not move the clock of another request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_AT: ContextVar[dt.datetime | None] = ContextVar("sandbox_at", default=None)


def now() -> dt.datetime:
    """The time a write in this request is stamped with: the UI edit's ``at``, else the real time."""
    return _AT.get() or dt.datetime.now(dt.UTC)


def parse_at(text: str | None) -> dt.datetime | None:
    """``?at=`` as ISO 8601 with an offset (``2026-12-04T10:00:00Z``). ValueError, saying why, for a time
    without an offset or in the future (nobody edits a record later than now)."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"at={text!r} is not an ISO 8601 time (e.g. 2026-12-04T10:00:00Z)") from None
    if at.tzinfo is None:
        raise ValueError(f"at={text!r} has no UTC offset (e.g. 2026-12-04T10:00:00Z)")
    if at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1):
        raise ValueError(f"at={text!r} is in the future: an edit can only be made at a past time")
    return at.astimezone(dt.UTC)


@contextmanager
def stamped_at(at: dt.datetime | None) -> Iterator[None]:
    """Within the block, the sandbox's writes are stamped ``at`` (None: the real time)."""
    token = _AT.set(at)
    try:
        yield
    finally:
        _AT.reset(token)

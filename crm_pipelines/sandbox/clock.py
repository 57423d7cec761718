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


class EditTimeError(ValueError):
    """An ``at`` no edit can have been made at; the UI endpoints answer 400 with this text."""


def now() -> dt.datetime:
    """The time a write in this request is stamped with: the UI edit's ``at``, else the real time."""
    return _AT.get() or dt.datetime.now(dt.UTC)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def parse_at(text: str | None) -> dt.datetime | None:
    """``?at=`` as ISO 8601 with an offset (``2026-12-04T10:00:00Z``). EditTimeError, saying why, for a time
    without an offset or in the future (nobody edits a record later than now)."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EditTimeError(f"at={text!r} is not an ISO 8601 time (e.g. 2026-12-04T10:00:00Z)") from None
    if at.tzinfo is None:
        raise EditTimeError(f"at={text!r} has no UTC offset (e.g. 2026-12-04T10:00:00Z)")
    if at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1):
        raise EditTimeError(f"at={text!r} is in the future: an edit can only be made at a past time")
    return at.astimezone(dt.UTC)


def check_after(last_modified: dt.datetime | None) -> None:
    """Within an edit at a given time: EditTimeError when the record was last modified after it (a CRM's
    modification time never moves backwards; silently stamping the edit later would break the test that
    asked for that time)."""
    at = _AT.get()
    if at is not None and last_modified is not None and at < last_modified:
        raise EditTimeError(f"at={at.isoformat()} is before the record's last modification "
                            f"({last_modified.astimezone(dt.UTC).isoformat()}): edit it at a later time")


@contextmanager
def stamped_at(at: dt.datetime | None) -> Iterator[None]:
    """Within the block, the sandbox's writes are stamped ``at`` (None: the real time)."""
    token = _AT.set(at)
    try:
        yield
    finally:
        _AT.reset(token)

"""The write outbox: every write the sync sends, recorded before it is sent and confirmed after (issue 13,
DESIGN Invariants 1, 2 and 4).

A write is keyed by what it does (``sync/write_requests.py``): the same planned write, asked for again before
the plan has seen it land (the next extract), has the same key and is not sent twice. Its row moves

- ``sent``: recorded, in its own committed transaction, before the call. A row still ``sent`` when a run
  starts is in doubt: the process died between the call and the commit of its outcome. A create in doubt is
  looked for in the target by its lookup field (``catalog``: an email, an external-id field) before it is
  sent again; an update is sent again (setting a field to a value twice is the same as once).
- ``done``: the target confirmed it; set in the transaction that records its baselines (CONF-5).
- ``failed``: the target refused it (OPS-6): the API's code and text are kept, and it is sent again on a
  later run once ``next_attempt_at`` has passed (backing off), or at once when what it would send changed
  (the record was fixed); ``superseded`` once the plan no longer has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state.schema import write_outbox

SENT, DONE, FAILED, SUPERSEDED = "sent", "done", "failed", "superseded"
# a refused record is tried again after 5 minutes, then twice as long each time, at most once a day
RETRY_FIRST, RETRY_MAX = timedelta(minutes=5), timedelta(hours=24)
# a write as recorded (``sync/write_requests.py`` makes them)
WRITE_COLUMNS = ("key", "operation", "object", "ref", "lookup_field", "lookup_value", "payload", "confirm")
_CHUNK = 1_000  # keys per statement


def as_recorded(value: object) -> str:
    """A payload or confirmation as recorded: JSON with sorted keys (a changed record is told by its text)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def retry_after(attempts: int) -> timedelta:
    """How long a write refused ``attempts`` times waits before it is sent again."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def states(engine_or_conn: Engine | Connection, keys: Sequence[str]) -> pd.DataFrame:
    """``key``, ``status``, ``target_id``, ``attempts``, ``next_attempt_at``, ``payload`` (as recorded, JSON
    text) of the keys already recorded."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return states(conn, keys)
    names = ["key", "status", "target_id", "attempts", "next_attempt_at", "payload"]
    query = sa.select(*[write_outbox.c[c] for c in names])
    rows = [tuple(r) for start in range(0, len(keys), _CHUNK)
            for r in engine_or_conn.execute(query.where(write_outbox.c.key.in_(keys[start : start + _CHUNK])))]
    out = pd.DataFrame(rows, columns=names)
    out["next_attempt_at"] = pd.to_datetime(out["next_attempt_at"], utc=True)
    return out


def record_sent(conn: Connection, target: str, writes: pd.DataFrame, now: datetime) -> None:
    """Record ``writes`` (``WRITE_COLUMNS``; ``payload``, ``confirm`` as Python values) as about to be sent, in
    the caller's transaction, which must commit before the calls: new keys are added, keys already recorded
    (a refused write tried again, one in doubt sent again) count one more attempt."""
    if writes.empty:
        return
    keys = writes["key"].tolist()
    seen = set(states(conn, keys)["key"])
    again = [{"k": r["key"], "lookup": r["lookup_value"], "sent_payload": as_recorded(r["payload"]),
              "sent_confirm": as_recorded(r["confirm"])}
             for r in writes[writes["key"].isin(seen)].to_dict("records")]  # fmt: skip
    if again:  # as sent now: the record may have changed
        conn.execute(write_outbox.update().where(write_outbox.c.key == sa.bindparam("k")).values(
            status=SENT, attempts=write_outbox.c.attempts + 1, updated_at=now, lookup_value=sa.bindparam("lookup"),
            payload=sa.bindparam("sent_payload"), confirm=sa.bindparam("sent_confirm")), again)  # fmt: skip
    new = writes[~writes["key"].isin(seen)]
    if len(new):
        rows = [{**{c: r[c] for c in WRITE_COLUMNS}, "target_crm": target, "status": SENT, "attempts": 1,
                 "payload": as_recorded(r["payload"]), "confirm": as_recorded(r["confirm"]),
                 "created_at": now, "updated_at": now} for r in new.to_dict("records")]  # fmt: skip
        conn.execute(write_outbox.insert(), rows)


def mark_done(conn: Connection, done: Iterable[tuple[str, str | None]], now: datetime) -> None:
    """(key, the record written) confirmed by the target, in the caller's transaction (with the baselines)."""
    rows = [{"k": key, "written": target_id} for key, target_id in done]
    if rows:  # one statement, its rows in batched round trips (``state/db.py``)
        conn.execute(write_outbox.update().where(write_outbox.c.key == sa.bindparam("k")).values(
            status=DONE, target_id=sa.bindparam("written"), code=None, message=None, next_attempt_at=None,
            updated_at=now), rows)  # fmt: skip


def mark_failed(conn: Connection, failed: Iterable[tuple[str, str | None, str | None]], now: datetime) -> None:
    """(key, the API's error code, its text) refused by the target: tried again after ``retry_after``."""
    failed = list(failed)
    if not failed:
        return
    attempts = states(conn, [key for key, _, _ in failed]).set_index("key")["attempts"]
    rows = [{"k": key, "error_code": code, "error_text": message,
             "due": now + retry_after(int(attempts[key]))} for key, code, message in failed]  # fmt: skip
    conn.execute(write_outbox.update().where(write_outbox.c.key == sa.bindparam("k")).values(
        status=FAILED, code=sa.bindparam("error_code"), message=sa.bindparam("error_text"),
        next_attempt_at=sa.bindparam("due"), updated_at=now), rows)  # fmt: skip


def in_doubt(engine: Engine, target: str) -> pd.DataFrame:
    """``target``'s writes recorded as sent whose outcome was never recorded (``WRITE_COLUMNS``, parsed)."""
    query = sa.select(*[write_outbox.c[c] for c in WRITE_COLUMNS]).where(
        write_outbox.c.target_crm == target, write_outbox.c.status == SENT)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = pd.DataFrame([tuple(r) for r in rows], columns=list(WRITE_COLUMNS))
    for col in ("payload", "confirm"):
        out[col] = [orjson.loads(v) for v in out[col].tolist()]
    return out


def supersede(conn: Connection, target: str, planned: set[str], now: datetime) -> int:
    """Writes of ``target`` the plan no longer has: refused ones (the record was fixed, or changed again) and
    updates in doubt (a later change replaced them): no longer retried, kept for the record. A create in doubt
    stays until it is found or sent again. Returns how many."""
    failed = [k for (k,) in conn.execute(sa.select(write_outbox.c.key).where(
        write_outbox.c.target_crm == target, (write_outbox.c.status == FAILED) | (
            (write_outbox.c.status == SENT) & (write_outbox.c.operation != "create"))))]  # fmt: skip
    gone = [k for k in failed if k not in planned]
    for start in range(0, len(gone), _CHUNK):
        conn.execute(write_outbox.update().where(write_outbox.c.key.in_(gone[start : start + _CHUNK])).values(
            status=SUPERSEDED, updated_at=now))  # fmt: skip
    return len(gone)


def failures(engine: Engine, target: str | None = None) -> pd.DataFrame:
    """Writes refused and still planned (``failed``): ``target_crm``, ``operation``, ``object``, ``ref``,
    ``code``, ``message``, ``attempts``, ``next_attempt_at``, ``updated_at``."""
    cols = ["target_crm", "operation", "object", "ref", "code", "message", "attempts", "next_attempt_at",
            "updated_at"]
    query = sa.select(*[write_outbox.c[c] for c in cols]).where(write_outbox.c.status == FAILED)
    if target is not None:
        query = query.where(write_outbox.c.target_crm == target)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(write_outbox.c.updated_at, write_outbox.c.key)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)

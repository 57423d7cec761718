"""COPYs that run on a worker thread while the caller prepares the next rows (PostgreSQL).

A first plan stores millions of rows: about a third of the time goes to the server taking them in, and the
client waits for it, with the other core idle. Handing each COPY's text to a worker thread lets the caller go
on encoding and escaping the next slice meanwhile: psycopg2 releases the GIL while it sends and while the
server works, as long as each read of the text is large (with its 8 KB default, every read waits for the
GIL and the two threads take turns instead of overlapping).

One worker and a short queue: the rows arrive in the order they were handed over, on the caller's
connection and in its transaction, and at most ``depth`` texts wait in memory. psycopg2 does not guard a
connection while a COPY's data flows (a statement sent meanwhile breaks the protocol and the transaction):
inside the block, every statement SQLAlchemy runs on the connection first waits for the COPYs handed over;
the driver's own cursors (``sql.insert_frame``, ``copy_out``, ``copy_now``, ``upsert`` on PostgreSQL) are not
seen, so use them outside the block.
"""

from __future__ import annotations

import io
import queue
import threading
from types import TracebackType

from sqlalchemy import event
from sqlalchemy.engine import Connection

_READ = 1 << 24  # characters per read of a COPY's text (see the module docstring)
_DONE = None


class CopyFailed(RuntimeError):
    """A COPY on the worker failed (the driver's error is the cause); the transaction is lost."""


class CopyBehind:
    """``with CopyBehind(conn) as copies: copies.submit(statement, text)``. Leaving the block waits for every
    COPY and raises the first that failed (as do ``submit`` and ``wait`` after a failure)."""

    def __init__(self, conn: Connection, depth: int = 2) -> None:
        # SQLite has no COPY (``sql.copy_text`` inserts there): no worker to start
        self._active = conn.dialect.name == "postgresql"
        self._conn = conn
        self._cursor = conn.connection.driver_connection.cursor() if self._active else None
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=depth)
        self._failed: BaseException | None = None
        self._abandoned = False  # the caller failed: what is queued is not sent
        self._sending = False  # a COPY is in flight on the worker
        self._worker = threading.Thread(target=self._run, name="copy-behind", daemon=True)

    def __enter__(self) -> CopyBehind:
        if self._active:
            event.listen(self._conn, "before_cursor_execute", self._before_statement)
            self._worker.start()
        return self

    def submit(self, statement: str, text: str) -> None:
        """Queue ``COPY … FROM STDIN`` (``statement``) of ``text``; blocks while ``depth`` COPYs wait."""
        self._raise_failure()
        if not self._active:
            raise RuntimeError("CopyBehind: COPY needs PostgreSQL")
        self._queue.put((statement, text))

    def wait(self) -> None:
        """Return once every COPY handed over is done (the connection is the caller's again)."""
        if self._active and self._worker.is_alive():
            self._queue.join()
        self._raise_failure()

    def _before_statement(self, *_: object) -> None:
        self.wait()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _DONE:
                    return
                if self._failed is None and not self._abandoned:  # else drain: the transaction is lost
                    statement, text = item
                    self._sending = True
                    self._cursor.copy_expert(statement, io.StringIO(text), size=_READ)
            except BaseException as err:  # handed to the caller's thread
                self._failed = err
            finally:
                self._sending = False
                item = text = None  # a slice is tens of MB: not kept while the next is awaited
                self._queue.task_done()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            # its own error: raised from a later statement's hook, the driver's would be reported as that one's
            raise CopyFailed(f"a COPY handed to the worker failed: {self._failed}") from self._failed

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if not self._active:
            return
        try:
            self._abandoned = error is not None
            # stop a COPY in flight (the transaction rolls back anyway); only then: a cancel meant for nothing
            # could reach the rollback that follows
            if self._abandoned and self._sending:
                self._conn.connection.driver_connection.cancel()
            self._queue.put(_DONE)
            self._worker.join()
        finally:
            event.remove(self._conn, "before_cursor_execute", self._before_statement)
        if error is None:
            self._raise_failure()


def copy_now(conn: Connection, statement: str, text: str) -> None:
    """The same COPY, on the caller's thread."""
    conn.connection.driver_connection.cursor().copy_expert(statement, io.StringIO(text), size=_READ)

"""Atomic units on a sandbox's SQLite connection (autocommit mode), shared by the three sandbox stores."""

from __future__ import annotations

import itertools
import sqlite3

_names = itertools.count(1)


class Transaction:
    """BEGIN/COMMIT, or a savepoint when already inside one, so writes compose: a batch of creates, a
    ``$batch`` change set or a composite call succeeds or fails whole within the enclosing request."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.savepoint: str | None = None

    def __enter__(self) -> sqlite3.Connection:
        if self.db.in_transaction:
            self.savepoint = f"sp{next(_names)}"
            self.db.execute(f"SAVEPOINT {self.savepoint}")
        else:
            self.db.execute("BEGIN")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self.savepoint is None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
            return
        if exc_type:
            self.db.execute(f"ROLLBACK TO {self.savepoint}")
        self.db.execute(f"RELEASE {self.savepoint}")

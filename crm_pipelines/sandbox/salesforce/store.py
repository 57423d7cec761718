"""The org's data in one SQLite file: a table per sObject with a column per field (names as in the API).

Columns named like the fields let SOQL compile to SQL over indexed columns instead of scanning JSON, which
is what keeps ``WHERE SystemModstamp > ...`` and ``WHERE Email = ...`` fast at a million rows. Deleted
records stay in their table (``IsDeleted = 1``, as in the recycle bin) with the time of deletion beside
them, so ``queryAll`` and getDeleted see them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from crm_pipelines.sandbox.salesforce.catalog import SOBJECTS
from crm_pipelines.sandbox.sqlite_tx import Transaction

DELETED_AT = "_DeletedDate"

# What the sync and the API filter and order on; each index leads with the column the query narrows by.
INDEXES = {
    "*": [("SystemModstamp",), ("LastModifiedDate",), ("CreatedDate",)],
    "Lead": [("Email",), ("ConvertedContactId",), ("External_Id__c",)],
    "Contact": [("Email",), ("AccountId",), ("External_Id__c",)],
    "Account": [("Name",), ("External_Id__c",)],
    "Opportunity": [("AccountId",), ("External_Id__c",)],
    "OpportunityContactRole": [("OpportunityId",), ("ContactId",)],
    "Task": [("WhoId",), ("WhatId",), ("External_Id__c",)],
    "User": [("Username",)],
}

META_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, expires_ms INTEGER, login_host TEXT
);
"""


def table_schema(object_name: str) -> str:
    o = SOBJECTS[object_name]
    cols = [f'"{f.name}" {f.sql_type}' + (" PRIMARY KEY" if f.name == "Id" else "") for f in o.columns]
    cols.append(f'"{DELETED_AT}" TEXT')
    stmts = [f'CREATE TABLE IF NOT EXISTS "{object_name}" ({", ".join(cols)});']
    for cols_ in INDEXES["*"] + INDEXES.get(object_name, []):
        name = f"{object_name}_by_{'_'.join(cols_)}"
        stmts.append(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{object_name}" ({", ".join(cols_)});')
    stmts.append(f'CREATE INDEX IF NOT EXISTS "{object_name}_by_deleted" ON "{object_name}" ("{DELETED_AT}") '
                 f'WHERE "{DELETED_AT}" IS NOT NULL;')
    return "\n".join(stmts)


class SalesforceStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection, used only from the server's event loop thread.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-131072")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.executescript(META_SCHEMA)
        self.create_tables(indexes=True)

    def create_tables(self, *, indexes: bool) -> None:
        for name in SOBJECTS:
            script = table_schema(name)
            if not indexes:
                script = "\n".join(s for s in script.splitlines() if not s.startswith("CREATE INDEX"))
            self.db.executescript(script)
            self._add_missing_columns(name)

    def _add_missing_columns(self, name: str) -> None:
        """A data directory from an older sandbox gains the fields added since (e.g. OtherStreet), as null."""
        have = {row[1] for row in self.db.execute(f'PRAGMA table_info("{name}")')}
        for f in SOBJECTS[name].columns:
            if f.name not in have:
                self.db.execute(f'ALTER TABLE "{name}" ADD COLUMN "{f.name}" {f.sql_type}')

    def wipe(self) -> None:
        """Forget every record and issued session; the org's connected app and credentials stay valid.

        Tables are dropped and re-created without indexes so seeding appends at full speed;
        ``create_tables(indexes=True)`` afterwards builds the indexes in one sorted pass each.
        """
        with self.transaction():
            for name in SOBJECTS:
                self.db.execute(f'DROP TABLE IF EXISTS "{name}"')
            self.db.execute("DELETE FROM counters")
            self.db.execute("DELETE FROM tokens WHERE kind = 'access'")
            self.db.execute("DELETE FROM meta WHERE key NOT IN ('credentials', 'connected_app')")
        self.create_tables(indexes=False)

    def transaction(self) -> Transaction:
        return Transaction(self.db)

    # -- meta, counters, tokens ---------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, orjson.dumps(value).decode()),
        )

    def next_sequence(self, name: str, start: int) -> int:
        """The next free sequence number for new ids of ``name`` (seeded ids end below ``start``)."""
        row = self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + 1 "
            "RETURNING value",
            (name, start),
        ).fetchone()
        return int(row[0])

    def put_token(self, token: str, kind: str, user_id: str, expires_ms: int | None, host: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tokens (token, kind, user_id, expires_ms, login_host) VALUES (?, ?, ?, ?, ?)",
            (token, kind, user_id, expires_ms, host),
        )

    def token(self, token: str) -> tuple[str, str, int | None] | None:
        row = self.db.execute("SELECT kind, user_id, expires_ms FROM tokens WHERE token = ?", (token,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def expire_access_tokens(self, at_ms: int) -> int:
        return self.db.execute(
            "UPDATE tokens SET expires_ms = ? WHERE kind = 'access' AND (expires_ms IS NULL OR expires_ms > ?)",
            (at_ms, at_ms),
        ).rowcount

    # -- records ------------------------------------------------------------------------------------
    def insert_rows(self, object_name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        cols = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" * len(columns))
        self.db.executemany(f'INSERT INTO "{object_name}" ({cols}) VALUES ({marks})', rows)

    def get(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        cur = self.db.execute(f'SELECT * FROM "{object_name}" WHERE Id = ?', (record_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def find_by(self, object_name: str, column: str, value: Any, limit: int = 3) -> list[dict[str, Any]]:
        cur = self.db.execute(
            f'SELECT * FROM "{object_name}" WHERE "{column}" = ? AND IsDeleted = 0 LIMIT ?', (value, limit)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def exists(self, object_name: str, record_id: str) -> bool:
        sql = f'SELECT 1 FROM "{object_name}" WHERE Id = ? AND IsDeleted = 0'
        return self.db.execute(sql, (record_id,)).fetchone() is not None

    def insert(self, object_name: str, values: dict[str, Any]) -> None:
        self.insert_rows(object_name, list(values), [list(values.values())])

    def update(self, object_name: str, record_id: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f'"{c}" = ?' for c in values)
        self.db.execute(f'UPDATE "{object_name}" SET {sets} WHERE Id = ?', (*values.values(), record_id))

    def counts(self) -> dict[str, tuple[int, int]]:
        out = {}
        for name in SOBJECTS:
            live, deleted = self.db.execute(
                f'SELECT COALESCE(SUM(IsDeleted = 0), 0), COALESCE(SUM(IsDeleted = 1), 0) FROM "{name}"'
            ).fetchone()
            out[name] = (int(live), int(deleted))
        return out

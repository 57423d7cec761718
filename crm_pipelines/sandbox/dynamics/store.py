"""The Dynamics sandbox's organization, persisted in ``dynamics.sqlite3`` of the data directory.

One SQLite table per Dataverse table, one column per attribute, named as the Web API names it (lookups as
``_<name>_value``), so ``$filter``/``$orderby`` become indexed SQL. Polymorphic lookups keep the target
table in a hidden ``_<name>_target`` column. Every write takes the next ``versionnumber`` from one
organization-wide counter (Dataverse's row version): it is the ETag and the change-tracking cursor.
Deleted rows leave a tombstone so delta links can report them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from crm_pipelines.sandbox.dynamics.catalog import TABLES, TEXT_TYPES, Attribute, Table
from crm_pipelines.sandbox.sqlite_tx import Transaction

_SQL_TYPE = {"Money": "REAL", "Decimal": "REAL", "Double": "REAL", "Integer": "INTEGER", "BigInt": "INTEGER",
             "Boolean": "INTEGER", "Picklist": "INTEGER", "State": "INTEGER", "Status": "INTEGER"}


def sql_type(attribute: Attribute) -> str:
    return _SQL_TYPE.get(attribute.type, "TEXT")


def json_number(value: Any) -> str:
    """A number as orjson writes it (shortest round-trip form), for SQL that renders rows as JSON."""
    return orjson.dumps(value).decode()


def target_column(attribute: Attribute) -> str | None:
    return f"_{attribute.name}_target" if attribute.is_lookup and len(attribute.targets) > 1 else None


def columns(table: Table) -> list[str]:
    """Storage columns in order: every attribute's Web API name, then hidden lookup-target columns."""
    out = [a.column for a in table.attributes]
    out += [c for a in table.attributes if (c := target_column(a))]
    return out


def _ddl(table: Table) -> str:
    defs = []
    for a in table.attributes:
        kind = sql_type(a)
        collate = " COLLATE NOCASE" if a.type in TEXT_TYPES else ""
        pk = " PRIMARY KEY" if a.name == table.primary_id else ""
        defs.append(f"{a.column} {kind}{collate}{pk}")
    defs += [f"{c} TEXT" for a in table.attributes if (c := target_column(a))]
    return f"CREATE TABLE IF NOT EXISTS {table.entity_set} ({', '.join(defs)}) WITHOUT ROWID"


def _indexes(table: Table) -> list[str]:
    cols = ["modifiedon", "versionnumber", *(a.column for a in table.lookups())]
    cols += [k for key in table.alternate_keys for k in key]
    cols += [a.column for a in table.attributes if a.custom]  # made to look rows up by
    if "emailaddress1" in table.by_name:
        cols.append("emailaddress1")
    return [f"CREATE INDEX IF NOT EXISTS {table.entity_set}_by_{c.strip('_')} ON {table.entity_set} ({c})"
            for c in dict.fromkeys(cols)]


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    entity_set TEXT NOT NULL, id TEXT NOT NULL, versionnumber INTEGER NOT NULL, deletedon TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tombstones_by_version ON tombstones (entity_set, versionnumber);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, client_id TEXT NOT NULL, expires_at REAL NOT NULL);
"""


class DynamicsStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection, used only from the server's event-loop thread.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-131072")
        self.db.create_function("json_number", 1, json_number, deterministic=True)
        self.db.executescript(SCHEMA)
        for table in TABLES:
            self.db.execute(_ddl(table))
            self._add_missing_columns(table)
        self._columns = {t.entity_set: columns(t) for t in TABLES}

    def _add_missing_columns(self, table: Table) -> None:
        """A data directory from an older sandbox gains the columns added since (crm_pipelines_key), as null."""
        have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table.entity_set})")}
        for a in table.attributes:
            if a.column not in have:
                collate = " COLLATE NOCASE" if a.type in TEXT_TYPES else ""
                self.db.execute(f"ALTER TABLE {table.entity_set} ADD COLUMN {a.column} {sql_type(a)}{collate}")

    def create_indexes(self) -> None:
        """Built after a bulk seed (faster than maintaining them row by row) and on every open."""
        for table in TABLES:
            for ddl in _indexes(table):
                self.db.execute(ddl)

    def drop_indexes(self) -> None:
        for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                                       "AND name NOT LIKE 'tombstones%'").fetchall():
            self.db.execute(f"DROP INDEX {name}")

    def close(self) -> None:
        self.db.close()

    def wipe(self) -> None:
        """Forget every record and issued token; the organization's app registration stays valid."""
        with self.transaction():
            for table in TABLES:
                self.db.execute(f"DELETE FROM {table.entity_set}")
            self.db.execute("DELETE FROM tombstones")
            self.db.execute("DELETE FROM counters")
            self.db.execute("DELETE FROM tokens")
            self.db.execute("DELETE FROM meta WHERE key NOT IN ('app')")

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

    def next_versions(self, count: int = 1) -> range:
        row = self.db.execute(
            "INSERT INTO counters (name, value) VALUES ('version', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + ? RETURNING value",
            (count, count),
        ).fetchone()
        return range(row[0] - count + 1, row[0] + 1)

    def current_version(self) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = 'version'").fetchone()
        return row[0] if row else 0

    def put_token(self, token: str, client_id: str, expires_at: float) -> None:
        self.db.execute("INSERT INTO tokens (token, client_id, expires_at) VALUES (?, ?, ?)",
                        (token, client_id, expires_at))

    def token(self, token: str) -> tuple[str, float] | None:
        row = self.db.execute("SELECT client_id, expires_at FROM tokens WHERE token = ?", (token,)).fetchone()
        return (row[0], row[1]) if row else None

    def expire_tokens(self) -> int:
        return self.db.execute("UPDATE tokens SET expires_at = ? WHERE expires_at > ?",
                               (time.time() - 1, time.time())).rowcount

    # -- records ------------------------------------------------------------------------------------
    def columns(self, table: Table) -> list[str]:
        return self._columns[table.entity_set]

    def insert_rows(self, table: Table, cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(cols))
        self.db.executemany(f"INSERT INTO {table.entity_set} ({', '.join(cols)}) VALUES ({marks})", rows)

    def get(self, table: Table, record_id: str) -> dict[str, Any] | None:
        cols = self.columns(table)
        row = self.db.execute(
            f"SELECT {', '.join(cols)} FROM {table.entity_set} WHERE {table.primary_id} = ?", (record_id,)
        ).fetchone()
        return dict(zip(cols, row, strict=True)) if row else None

    def get_many(self, table: Table, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        cols = self.columns(table)
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                f"SELECT {', '.join(cols)} FROM {table.entity_set} "
                f"WHERE {table.primary_id} IN ({','.join('?' * len(chunk))})", tuple(chunk))
            out.update({r[0]: dict(zip(cols, r, strict=True)) for r in rows})
        return out

    def find_by(self, table: Table, values: dict[str, Any]) -> list[dict[str, Any]]:
        cols = self.columns(table)
        where = " AND ".join(f"{c} = ?" for c in values)
        rows = self.db.execute(
            f"SELECT {', '.join(cols)} FROM {table.entity_set} WHERE {where} LIMIT 2", tuple(values.values())
        ).fetchall()
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def exists(self, table: Table, record_id: str) -> bool:
        return self.db.execute(
            f"SELECT 1 FROM {table.entity_set} WHERE {table.primary_id} = ?", (record_id,)
        ).fetchone() is not None

    def insert(self, table: Table, values: dict[str, Any]) -> None:
        self.insert_rows(table, list(values), [tuple(values.values())])
        # A row re-created under a deleted id is live again: a delta must not end with its deletion.
        self.db.execute("DELETE FROM tombstones WHERE entity_set = ? AND id = ?",
                        (table.entity_set, values[table.primary_id]))

    def update(self, table: Table, record_id: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{c} = ?" for c in values)
        self.db.execute(f"UPDATE {table.entity_set} SET {sets} WHERE {table.primary_id} = ?",
                        (*values.values(), record_id))

    def delete(self, table: Table, record_id: str, version: int, when: str) -> bool:
        gone = self.db.execute(f"DELETE FROM {table.entity_set} WHERE {table.primary_id} = ?", (record_id,)).rowcount
        if gone:
            self.db.execute("INSERT INTO tombstones (entity_set, id, versionnumber, deletedon) VALUES (?, ?, ?, ?)",
                            (table.entity_set, record_id, version, when))
        return bool(gone)

    def names(self, table: Table, ids: Sequence[str]) -> dict[str, str | None]:
        """Primary-name values of the given rows (lookup formatted values, ``$expand``)."""
        out: dict[str, str | None] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                f"SELECT {table.primary_id}, {table.primary_name} FROM {table.entity_set} "
                f"WHERE {table.primary_id} IN ({','.join('?' * len(chunk))})", tuple(chunk),
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def counts(self) -> dict[str, tuple[int, int]]:
        deleted = dict(self.db.execute("SELECT entity_set, COUNT(*) FROM tombstones GROUP BY entity_set").fetchall())
        return {
            t.entity_set: (self.db.execute(f"SELECT COUNT(*) FROM {t.entity_set}").fetchone()[0],
                           deleted.get(t.entity_set, 0))
            for t in TABLES
        }

"""The HubSpot sandbox's portal, persisted in one SQLite file of the data directory.

Records keep only the properties a user or import set (values as strings, as the API returns them); the
system properties (``hs_object_id``, create and modified dates) live in columns and are added on read, so
they can never drift from the record's real timestamps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from crm_pipelines.sandbox.sqlite_tx import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    object_type TEXT NOT NULL,
    id INTEGER NOT NULL,
    properties TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    archived_ms INTEGER,
    email_key TEXT,
    PRIMARY KEY (object_type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS property_history (
    object_type TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL,
    value TEXT, timestamp_ms INTEGER NOT NULL, source_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_record ON property_history (object_type, id, name);
CREATE TABLE IF NOT EXISTS associations (
    from_type TEXT NOT NULL, from_id INTEGER NOT NULL, to_type TEXT NOT NULL, to_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL, category TEXT NOT NULL,
    PRIMARY KEY (from_type, from_id, to_type, to_id, type_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS custom_properties (
    object_type TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL, PRIMARY KEY (object_type, name)
);
CREATE TABLE IF NOT EXISTS pipelines (
    object_type TEXT NOT NULL, id TEXT NOT NULL, definition TEXT NOT NULL, PRIMARY KEY (object_type, id)
);
CREATE TABLE IF NOT EXISTS owners (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL, first_name TEXT, last_name TEXT, user_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, archived INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, app TEXT NOT NULL, scopes TEXT NOT NULL, expires_ms INTEGER
);
"""
CACHE_KIB = 65536  # SQLite's page cache while serving
INDEX_BUILD_CACHE_KIB = 8192
# The record indexes, apart so that seeding can insert without them and build each in one sorted pass.
RECORD_INDEXES = {
    "objects_by_modified": "CREATE INDEX IF NOT EXISTS objects_by_modified "
    "ON objects (object_type, archived, updated_ms, id)",
    "objects_by_created": "CREATE INDEX IF NOT EXISTS objects_by_created "
    "ON objects (object_type, archived, created_ms, id)",
    "contacts_unique_email": "CREATE UNIQUE INDEX IF NOT EXISTS contacts_unique_email ON objects (email_key) "
    "WHERE object_type = 'contacts' AND archived = 0 AND email_key IS NOT NULL",
}


@dataclass(frozen=True)
class Record:
    object_type: str
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool
    archived_ms: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Record:
        return cls(row[0], row[1], orjson.loads(row[2]), row[3], row[4], bool(row[5]), row[6])


RECORD_COLUMNS = "object_type, id, properties, created_ms, updated_ms, archived, archived_ms"


def email_key(value: str | None) -> str | None:
    """HubSpot treats emails as unique case-insensitively, ignoring surrounding whitespace."""
    if value is None:
        return None
    key = value.strip().lower()
    return key or None


class HubSpotStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection, used only from the server's event loop thread.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.db.executescript(SCHEMA)
        self.create_record_indexes()

    def drop_record_indexes(self) -> None:
        """Before a bulk seed: maintaining three indexes row by row costs more than building them after."""
        for name in RECORD_INDEXES:
            self.db.execute(f"DROP INDEX IF EXISTS {name}")

    def create_record_indexes(self) -> None:
        # SQLite sorts an index's keys in memory up to the cache size, on top of the page cache the seed has
        # filled: at --scale 1000000 that raised the sandbox's peak by 50 MB. With a small cache it sorts in
        # runs merged from a temporary file, as fast at that size (5.3 s for the three).
        self.db.execute(f"PRAGMA cache_size=-{INDEX_BUILD_CACHE_KIB}")
        try:
            for sql in RECORD_INDEXES.values():
                self.db.execute(sql)
        finally:
            self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")

    def close(self) -> None:
        self.db.close()

    def wipe(self) -> None:
        """Forget every record and issued access token; the portal's own credentials stay valid."""
        tables = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        with self.transaction():
            for table in tables:
                if table not in ("meta", "tokens"):
                    self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM tokens WHERE kind = 'oauth_access'")
            self.db.execute("DELETE FROM meta WHERE key NOT IN ('credentials', 'oauth_client')")

    def transaction(self) -> Transaction:
        return Transaction(self.db)

    # -- meta and ids -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, orjson.dumps(value).decode()),
        )

    def allocate_ids(self, name: str, base: int, count: int) -> range:
        row = self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + ? RETURNING value",
            (name, base + count, count),
        ).fetchone()
        end = row[0]
        return range(end - count + 1, end + 1)

    # -- records ------------------------------------------------------------------------------------
    def insert_records(self, object_type: str, rows: Iterable[tuple[int, str, int, int, str | None]]) -> None:
        """Bulk insert of (id, properties_json, created_ms, updated_ms, email_key)."""
        self.db.executemany(
            "INSERT INTO objects (object_type, id, properties, created_ms, updated_ms, email_key) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((object_type, *row) for row in rows),
        )

    def get(self, object_type: str, record_id: int, *, archived: bool = False) -> Record | None:
        row = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = ? AND id = ? AND archived = ?",
            (object_type, record_id, int(archived)),
        ).fetchone()
        return Record.from_row(row) if row else None

    def get_many(self, object_type: str, ids: Sequence[int], *, archived: bool = False) -> dict[int, Record]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = ? AND archived = ? AND id IN ({marks})",
            (object_type, int(archived), *ids),
        )
        return {r[1]: Record.from_row(r) for r in rows}

    def find_by_email(self, email: str) -> Record | None:
        row = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = 'contacts' AND archived = 0 AND email_key = ?",
            (email_key(email),),
        ).fetchone()
        return Record.from_row(row) if row else None

    def find_by_property(self, object_type: str, name: str, value: str) -> Record | None:
        row = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = ? AND archived = 0 "
            "AND json_extract(properties, '$.' || ?) = ? ORDER BY id LIMIT 1",
            (object_type, f'"{name}"', value),
        ).fetchone()
        return Record.from_row(row) if row else None

    def page(
        self, object_type: str, after_id: int, limit: int, *, archived: bool, archived_since_ms: int = 0
    ) -> list[Record]:
        """Records in id order after ``after_id``; archived ones only while still retained."""
        if archived:
            sql = (
                f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = ? AND archived = 1 AND id > ? "
                "AND archived_ms >= ? ORDER BY id LIMIT ?"
            )
            params: tuple = (object_type, after_id, archived_since_ms, limit)
        else:
            sql = (
                f"SELECT {RECORD_COLUMNS} FROM objects WHERE object_type = ? AND archived = 0 AND id > ? "
                "ORDER BY id LIMIT ?"
            )
            params = (object_type, after_id, limit)
        return [Record.from_row(r) for r in self.db.execute(sql, params)]

    def save(self, record: Record) -> None:
        self.db.execute(
            "UPDATE objects SET properties = ?, updated_ms = ?, archived = ?, archived_ms = ?, email_key = ? "
            "WHERE object_type = ? AND id = ?",
            (
                orjson.dumps(record.properties).decode(),
                record.updated_ms,
                int(record.archived),
                record.archived_ms,
                email_key(record.properties.get("email")) if record.object_type == "contacts" else None,
                record.object_type,
                record.id,
            ),
        )

    def counts(self) -> dict[str, tuple[int, int]]:
        rows = self.db.execute(
            "SELECT object_type, SUM(archived = 0), SUM(archived = 1) FROM objects GROUP BY object_type"
        )
        return {r[0]: (r[1] or 0, r[2] or 0) for r in rows}

    def query(self, sql: str, params: Sequence[Any]) -> list[Record]:
        return [Record.from_row(r) for r in self.db.execute(sql, params)]

    def scalar(self, sql: str, params: Sequence[Any]) -> Any:
        return self.db.execute(sql, params).fetchone()[0]

    # -- property history ---------------------------------------------------------------------------
    def add_history(self, rows: Iterable[tuple[str, int, str, str | None, int, str]]) -> None:
        """(object_type, id, name, value, timestamp_ms, source_type), oldest first."""
        self.db.executemany(
            "INSERT INTO property_history (object_type, id, name, value, timestamp_ms, source_type) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def history(self, object_type: str, record_id: int, names: Sequence[str]) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        marks = ",".join("?" * len(names))
        rows = self.db.execute(
            "SELECT name, value, timestamp_ms, source_type FROM property_history "
            f"WHERE object_type = ? AND id = ? AND name IN ({marks}) ORDER BY rowid DESC",
            (object_type, record_id, *names),
        )
        for name, value, ts, source in rows:
            out.setdefault(name, []).append((value, ts, source))
        return out

    # -- associations -------------------------------------------------------------------------------
    def add_associations(self, rows: Iterable[tuple[str, int, str, int, int, str]]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO associations (from_type, from_id, to_type, to_id, type_id, category) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def remove_associations(
        self, from_type: str, from_id: int, to_type: str, to_id: int, type_ids: Sequence[int] | None = None
    ) -> None:
        sql = "DELETE FROM associations WHERE from_type = ? AND from_id = ? AND to_type = ? AND to_id = ?"
        params: list[Any] = [from_type, from_id, to_type, to_id]
        if type_ids is not None:
            sql += f" AND type_id IN ({','.join('?' * len(type_ids))})"
            params += list(type_ids)
        self.db.execute(sql, params)

    def associations_of(
        self, from_type: str, from_id: int, to_type: str, after_to_id: int = 0, limit: int = 1_000_000
    ) -> dict[int, list[tuple[int, str]]]:
        """{to_id: [(type_id, category), ...]} for up to ``limit`` distinct targets after ``after_to_id``."""
        rows = self.db.execute(
            "SELECT to_id, type_id, category FROM associations WHERE from_type = ? AND from_id = ? "
            "AND to_type = ? AND to_id IN (SELECT DISTINCT to_id FROM associations WHERE from_type = ? "
            "AND from_id = ? AND to_type = ? AND to_id > ? ORDER BY to_id LIMIT ?) ORDER BY to_id, type_id",
            (from_type, from_id, to_type, from_type, from_id, to_type, after_to_id, limit),
        )
        out: dict[int, list[tuple[int, str]]] = {}
        for to_id, type_id, category in rows:
            out.setdefault(to_id, []).append((type_id, category))
        return out

    def associations_of_many(
        self, from_type: str, from_ids: Sequence[int], to_type: str
    ) -> dict[int, dict[int, list[tuple[int, str]]]]:
        """``associations_of`` for many records in one query: {from_id: {to_id: [(type_id, category), ...]}}."""
        out: dict[int, dict[int, list[tuple[int, str]]]] = {}
        if not from_ids:
            return out
        marks = ",".join("?" * len(from_ids))
        rows = self.db.execute(
            f"SELECT from_id, to_id, type_id, category FROM associations WHERE from_type = ? AND to_type = ? "
            f"AND from_id IN ({marks}) ORDER BY from_id, to_id, type_id",
            (from_type, to_type, *from_ids),
        )
        for from_id, to_id, type_id, category in rows:
            out.setdefault(from_id, {}).setdefault(to_id, []).append((type_id, category))
        return out

    def contact_deals(self, contact_ids: Sequence[int]) -> dict[int, list[tuple[int, int, str]]]:
        """{contact id: [(deal id, created_ms, properties JSON), ...]} of the live deals each is associated with
        (each deal once, whatever association types link them)."""
        out: dict[int, list[tuple[int, int, str]]] = {}
        for start in range(0, len(contact_ids), 500):
            chunk = list(contact_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT DISTINCT a.from_id, d.id, d.created_ms, d.properties FROM associations a "
                "JOIN objects d ON d.object_type = 'deals' AND d.id = a.to_id AND d.archived = 0 "
                f"WHERE a.from_type = 'contacts' AND a.to_type = 'deals' AND a.from_id IN ({marks})",
                chunk,
            )
            for contact_id, deal_id, created_ms, properties in rows:
                out.setdefault(contact_id, []).append((deal_id, created_ms, properties))
        return out

    def count_associations(self) -> int:
        return self.scalar("SELECT COUNT(*) FROM associations", ())

    # -- definitions --------------------------------------------------------------------------------
    def custom_properties(self, object_type: str, *, archived: bool = False) -> list[dict]:
        """Live custom properties, or with ``archived`` those in the recycle bin (their definition keeps
        ``archived`` and ``archivedAt``)."""
        rows = self.db.execute(
            "SELECT definition FROM custom_properties WHERE object_type = ? ORDER BY rowid", (object_type,)
        )
        return [d for r in rows if bool((d := orjson.loads(r[0])).get("archived")) == archived]

    def add_custom_property(self, object_type: str, name: str, definition: dict) -> None:
        """Create it unless the name is taken, by a live or an archived property: an admin's deletion stands."""
        self.db.execute(
            "INSERT INTO custom_properties (object_type, name, definition) VALUES (?, ?, ?) "
            "ON CONFLICT(object_type, name) DO NOTHING",
            (object_type, name, orjson.dumps(definition).decode()),
        )

    def put_custom_property(self, object_type: str, name: str, definition: dict) -> None:
        self.db.execute(
            "INSERT INTO custom_properties (object_type, name, definition) VALUES (?, ?, ?) "
            "ON CONFLICT(object_type, name) DO UPDATE SET definition = excluded.definition",
            (object_type, name, orjson.dumps(definition).decode()),
        )

    def pipelines(self, object_type: str) -> list[dict]:
        rows = self.db.execute("SELECT definition FROM pipelines WHERE object_type = ? ORDER BY rowid", (object_type,))
        return [orjson.loads(r[0]) for r in rows]

    def put_pipeline(self, object_type: str, pipeline: dict) -> None:
        self.db.execute(
            "INSERT INTO pipelines (object_type, id, definition) VALUES (?, ?, ?) "
            "ON CONFLICT(object_type, id) DO UPDATE SET definition = excluded.definition",
            (object_type, pipeline["id"], orjson.dumps(pipeline).decode()),
        )

    def owners(self, *, archived: bool = False) -> list[tuple]:
        return self.db.execute(
            "SELECT id, email, first_name, last_name, user_id, created_ms, updated_ms, archived FROM owners "
            "WHERE archived = ? ORDER BY id",
            (int(archived),),
        ).fetchall()

    def insert_owners(self, rows: Iterable[tuple]) -> None:
        self.db.executemany(
            "INSERT INTO owners (id, email, first_name, last_name, user_id, created_ms, updated_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    # -- tokens -------------------------------------------------------------------------------------
    def put_token(self, token: str, kind: str, app: str, scopes: list[str], expires_ms: int | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tokens (token, kind, app, scopes, expires_ms) VALUES (?, ?, ?, ?, ?)",
            (token, kind, app, orjson.dumps(scopes).decode(), expires_ms),
        )

    def token(self, token: str) -> tuple[str, str, list[str], int | None] | None:
        row = self.db.execute("SELECT kind, app, scopes, expires_ms FROM tokens WHERE token = ?", (token,)).fetchone()
        return (row[0], row[1], orjson.loads(row[2]), row[3]) if row else None

    def expire_access_tokens(self, now_ms: int) -> int:
        return self.db.execute("UPDATE tokens SET expires_ms = ? WHERE kind = 'oauth_access'", (now_ms,)).rowcount

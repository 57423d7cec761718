"""Engines for the state database: a SQLite file by default, PostgreSQL when a URL says so."""

from __future__ import annotations

from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

DEFAULT_SQLITE_PATH = Path(".crm_pipelines/state.sqlite3")


def _json_dumps(value: object) -> str:
    # orjson: mirror upserts serialise every record, and the standard library is several times slower
    return orjson.dumps(value).decode()


def default_url(path: Path = DEFAULT_SQLITE_PATH) -> str:
    return f"sqlite:///{path}"


def create_state_engine(url: str | None = None) -> Engine:
    """An engine whose schema is migrated to the current version."""
    from crm_pipelines.state.migrations import migrate

    engine = engine_for_url(url)
    migrate(engine)
    return engine


def driver_url(url: str) -> str:
    """A URL as users write it, with the driver this project installs: psycopg2 for PostgreSQL (which
    dagster-postgres needs anyway) for ``postgres://`` and ``postgresql://``; an explicit driver is kept."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    return url


def engine_for_url(url: str | None = None, **options: object) -> Engine:
    """The one place a database URL becomes an engine (settings, environment, a bench's ``--database-url``).

    SQLite runs in WAL mode with a generous busy timeout, so separate processes (a sensor, a run, the
    CLI) can share one file. Not migrated: ``create_state_engine`` is what the product opens.
    """
    url = driver_url(url or default_url())
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60}, json_serializer=_json_dumps)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # pysqlite's own transaction handling is off; SQLAlchemy's "begin" event below emits BEGIN, so
            # transactions span reads and writes exactly as written (SQLAlchemy's documented recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            # IMMEDIATE: take the write lock up front, so a transaction that reads then writes (a budget
            # reservation, a migration) waits for another process instead of failing with SQLITE_BUSY.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        # values_plus_batch: UPDATE/DELETE executemany in batched round trips (psycopg2's own is one per row)
        if url.startswith("postgresql+psycopg2"):
            options.setdefault("executemany_mode", "values_plus_batch")
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps, **options)
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"

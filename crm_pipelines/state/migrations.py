"""Versioned, idempotent schema migrations: run at every engine start, each step applied once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state import schema

# Each step states its own DDL on its own ``MetaData``: a database at version N upgrades to N+1 the same way
# whenever it runs, whatever ``schema.py`` declares by then. Never edit a step that has shipped; add one.
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_ID = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def _v1_api_usage(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "api_usage",
        md,
        sa.Column("connection", sa.String(200), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "api_budget_lock",
        md,
        sa.Column("connection", sa.String(200), primary_key=True),
        sa.Column("reservations", sa.BigInteger, nullable=False),
    )
    md.create_all(conn, checkfirst=True)


def _mirror_table_v2(md: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name,
        md,
        sa.Column("id", _ID, primary_key=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("record", _JSON, nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index(f"ix_{name}_modified_at", "modified_at"),
    )


_V2_MIRRORS = (
    "mirror_hubspot_contacts", "mirror_hubspot_companies", "mirror_hubspot_deals", "mirror_hubspot_associations",
    "mirror_hubspot_pipelines", "mirror_hubspot_owners", "mirror_salesforce_lead", "mirror_salesforce_contact",
    "mirror_salesforce_account", "mirror_salesforce_opportunity", "mirror_salesforce_opportunitycontactrole",
    "mirror_salesforce_opportunitystage", "mirror_salesforce_recordtype", "mirror_salesforce_user",
    "mirror_dynamics_contacts", "mirror_dynamics_leads", "mirror_dynamics_accounts", "mirror_dynamics_opportunities",
    "mirror_dynamics_systemusers",
)  # fmt: skip


def _v2_mirror_and_cursors(conn: Connection) -> None:
    md = sa.MetaData()
    for name in _V2_MIRRORS:
        _mirror_table_v2(md, name)
    sa.Table(
        "cursors",
        md,
        sa.Column("connection", sa.String(200), primary_key=True),
        sa.Column("object", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    md.create_all(conn, checkfirst=True)


_V3_MIRRORS = ("mirror_hubspot_tasks", "mirror_salesforce_task")  # OPS-4


def _v3_tasks_and_extracted_at(conn: Connection) -> None:
    """HubSpot tasks and Salesforce Task mirrors; every mirror indexed on ``extracted_at`` (what ``unified``
    reads since its watermark)."""
    md = sa.MetaData()
    for name in _V3_MIRRORS:
        _mirror_table_v2(md, name)
    md.create_all(conn, checkfirst=True)
    for name in (*_V2_MIRRORS, *_V3_MIRRORS):
        table = sa.Table(name, sa.MetaData(), sa.Column("extracted_at", sa.DateTime(timezone=True)))
        sa.Index(f"ix_{name}_extracted_at", table.c.extracted_at).create(conn, checkfirst=True)


STEPS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_api_usage),
    (2, _v2_mirror_and_cursors),
    (3, _v3_tasks_and_extracted_at),
]


def current_version(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(schema.schema_version.c.version), 0))).scalar_one()


def _one_at_a_time(conn: Connection) -> None:
    """Processes starting at once migrate one after another (SQLite's BEGIN IMMEDIATE already does this).
    PostgreSQL's CREATE TABLE IF NOT EXISTS is no guard: two sessions can both find a table missing, and the
    second create fails on the catalog's unique index (seen when the bench's three lanes started together)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(74001)"))


def migrate(engine: Engine, *, to_version: int | None = None) -> int:
    """Bring the schema to the newest version (or ``to_version``); safe to run concurrently and repeatedly."""
    with engine.begin() as conn:
        _one_at_a_time(conn)
        schema.schema_version.create(conn, checkfirst=True)
    for version, step in STEPS:
        if to_version is not None and version > to_version:
            break
        with engine.begin() as conn:
            _one_at_a_time(conn)
            if current_version(conn) >= version:
                continue
            step(conn)
            conn.execute(schema.schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
    with engine.connect() as conn:
        return current_version(conn)

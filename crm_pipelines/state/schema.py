"""Tables of the state database as the code reads and writes them today.

Each change here comes with a migration step (``migrations.py``) that brings an existing database to the
same shape; ``test_state_migrations`` checks that a migrated database matches these declarations.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_pipelines import catalog

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

# API calls per connection in one-minute buckets: a rolling 24 h sum stays one indexed range scan, and a
# day is at most 1,440 rows per connection however many calls it held (OPS-2).
api_usage = sa.Table(
    "api_usage",
    metadata,
    sa.Column("connection", sa.String(200), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),  # epoch seconds // 60
    sa.Column("calls", sa.BigInteger, nullable=False),
)

# One row per connection, updated first in every reservation: it serialises reservations of separate
# processes on both backends (a row lock on PostgreSQL, the write lock on SQLite).
api_budget_lock = sa.Table(
    "api_budget_lock",
    metadata,
    sa.Column("connection", sa.String(200), primary_key=True),
    sa.Column("reservations", sa.BigInteger, nullable=False),
)

# -- mirror tables (issue 6): the records as each CRM returned them, one per catalog object --------------

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_ID = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def _mirror_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        # byte order ("C") on PostgreSQL: id prefix ranges (replace_groups) must compare as on SQLite
        sa.Column("id", _ID, primary_key=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("record", _JSON, nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index(f"ix_{name}_modified_at", "modified_at"),
        # ``unified`` reads what was extracted since its watermark (incremental runs)
        sa.Index(f"ix_{name}_extracted_at", "extracted_at"),
    )


MIRROR_TABLES: dict[tuple[str, str], sa.Table] = {
    (o.crm, o.name): _mirror_table(o.mirror_table) for o in catalog.OBJECTS
}

# Watermarks per connection and object: the incremental read's position, the deletion sweep's, …
cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("connection", sa.String(200), primary_key=True),
    sa.Column("object", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

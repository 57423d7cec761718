"""Tables of the state database. Each issue adds its tables here and a migration step that creates them."""

from __future__ import annotations

import sqlalchemy as sa

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

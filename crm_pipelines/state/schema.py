"""Tables of the state database as the code reads and writes them today.

Each change here comes with a migration step (``migrations.py``) that brings an existing database to the
same shape; ``test_state_migrations`` checks that a migrated database matches these declarations.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON, JSONB

from crm_pipelines import catalog
from crm_pipelines.state import unified

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


def _mirror_table(name: str, records: bool) -> sa.Table:
    # each extract's materialization counts the live and deleted records from an index (migration 13)
    counted = [sa.Index(f"ix_{name}_deleted", "deleted")] if records else []
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
        *counted,
    )


MIRROR_TABLES: dict[tuple[str, str], sa.Table] = {
    (o.crm, o.name): _mirror_table(o.mirror_table, o.kind is catalog.Kind.RECORDS) for o in catalog.OBJECTS
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

# -- links (issue 11): which records of the three CRMs are one contact, company or deal ------------------

links = sa.Table(
    "links",
    metadata,
    sa.Column("kind", _ID, primary_key=True),  # contact, company, deal
    sa.Column("hubspot_id", _ID, primary_key=True),
    sa.Column("identity_id", sa.Text, nullable=True),  # the identity in the unified_* tables
    sa.Column("salesforce_id", _ID, nullable=True),
    sa.Column("salesforce_type", sa.Text, nullable=True),  # Lead / Contact, Account, Opportunity
    sa.Column("dynamics_id", _ID, nullable=True),
    sa.Column("dynamics_type", sa.Text, nullable=True),  # contact / lead, account, opportunity
    sa.Column("origin", sa.Text, nullable=False),  # match (derived each run) or sync (written through)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_links_salesforce", "kind", "salesforce_id"),
    sa.Index("ix_links_dynamics", "kind", "dynamics_id"),
    # the few links the sync wrote through, read by every sync run (migration 14)
    sa.Index("ix_links_sync", "kind", "hubspot_id", postgresql_where=sa.text("origin = 'sync'"),
             sqlite_where=sa.text("origin = 'sync'")),
)

# every change of a link, with why: a user asks "why are these two records one?" and reads the answer here
link_history = sa.Table(
    "link_history",
    metadata,
    sa.Column("row_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", _ID, nullable=False),
    sa.Column("hubspot_id", _ID, nullable=False),
    sa.Column("change", sa.Text, nullable=False),  # created, changed, removed
    sa.Column("before", _JSON, nullable=True),
    sa.Column("after", _JSON, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_link_history_record", "kind", "hubspot_id"),
    # the link changes a deletion made, read by every plan (DEL-4, migration 14)
    sa.Index("ix_link_history_deleted", "kind", postgresql_where=sa.text("reason LIKE '%deleted%'"),
             sqlite_where=sa.text("reason LIKE '%deleted%'")),
)

# -- baselines (issue 12): per linked record and mapped field, the value last synced (CONF-5, Invariant 2) ----

baselines = sa.Table(
    "sync_baselines",
    metadata,
    sa.Column("kind", _ID, primary_key=True),  # contact, company, deal
    sa.Column("hubspot_id", _ID, primary_key=True),
    sa.Column("other_crm", _ID, primary_key=True),  # salesforce, dynamics
    sa.Column("field", _ID, primary_key=True),  # the HubSpot property of the mapping
    sa.Column("value", sa.Text, nullable=True),  # in the merge's comparable text form; None: synced blank
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("write_id", sa.Text, nullable=False),  # the write that set it (the outbox's, writes issue)
)

# -- the stored plan (issue 12): every target's plan, one row per planned create, update, association,
# left-out candidate or finding, under the identity it was planned for (``state/plan_store.py``) ----------

_TEXT_ID = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
_PLAN_JSON = sa.JSON().with_variant(JSON(), "postgresql")
plan_rows = sa.Table(
    "plan_rows",
    metadata,
    sa.Column("target_crm", _ID, primary_key=True),
    sa.Column("part", _ID, primary_key=True),  # a frame of ``sync/plan.TargetPlan``: creates, updates, ...
    sa.Column("scope", _TEXT_ID, primary_key=True),  # "contact:<identity>", ...; "" for plan-wide rows
    sa.Column("row_hash", sa.BigInteger, primary_key=True),  # the row's content: equal rows are not rewritten
    # the frame's columns: JSON kept as written (PostgreSQL ``json``, not ``jsonb``, whose parsing took half of
    # a first plan's COPY); a scope's rows are found through the primary key (``plan_store``), no index of its own
    sa.Column("row", _PLAN_JSON, nullable=False),
)

# what ``unified`` changed since the plan last read it: records per kind, appended in the transaction that
# writes the result rows; the plan replans the identities they belong to, then deletes what it consumed
plan_changes = sa.Table(
    "plan_changes",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", _ID, nullable=False),  # contact, company, deal; "*": everything (a full update)
    sa.Column("crm", _ID, nullable=False),  # hubspot, salesforce, dynamics; "identity": an identity id
    sa.Column("record_id", _TEXT_ID, nullable=False),
)

# the stored plan's counts per target, frame and value of a column (``plan_store.summarize``), kept by the
# difference each plan makes: what a plan's metadata and its API calls are read from without its rows
plan_summary = sa.Table(
    "plan_summary",
    metadata,
    sa.Column("target_crm", _ID, primary_key=True),
    sa.Column("part", _ID, primary_key=True),  # a TargetPlan frame, or "work": the writes (OPS-8)
    sa.Column("dim", _ID, primary_key=True),  # "rows", "records" (updates: per kind), "calls", or a column name
    sa.Column("value", _TEXT_ID, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# -- the writes (issue 13): every write the sync sends, recorded before it is sent (``state/outbox.py``) ----

write_outbox = sa.Table(
    "write_outbox",
    metadata,
    sa.Column("key", _ID, primary_key=True),  # the write's idempotency key (``outbox.key_of``)
    sa.Column("target_crm", _ID, nullable=False),
    sa.Column("operation", _ID, nullable=False),  # create, update
    sa.Column("object", _ID, nullable=False),  # the target API's object (Lead, contacts, ...)
    sa.Column("ref", _TEXT_ID, nullable=False),  # what it is for: the source record of a create, else the record
    sa.Column("lookup_field", _ID, nullable=True),  # a create's: the field it can be found again by (catalog)
    sa.Column("lookup_value", sa.Text, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),  # JSON: the record as sent (API field -> API value)
    sa.Column("confirm", sa.Text, nullable=False),  # JSON: the baselines it sets once the target confirms
    # sent: recorded, the call may have happened; done: confirmed; failed: refused (retried when due);
    # superseded: a failed write the plan no longer has
    sa.Column("status", _ID, nullable=False),
    sa.Column("target_id", _TEXT_ID, nullable=True),  # the record written (a create's new id)
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("code", sa.Text, nullable=True),  # the API's error code and text of the last refusal
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_write_outbox_status", "target_crm", "status"),
)

# -- unified result tables (issue 11), declared in ``unified.py`` -----------------------------------------

UNIFIED_TABLES: dict[str, sa.Table] = {d.name: unified.sa_table(d, metadata) for d in unified.TABLES}

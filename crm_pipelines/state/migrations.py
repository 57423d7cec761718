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


# v4: the link table with its history, and the declared ``unified_*`` tables (a frozen copy of
# ``unified.TABLES`` as it was then: name, columns as name:kind, delete key, primary key or "-" for a
# surrogate row id).
_V4_UNIFIED = """
contact_identities | identity_id:id email hubspot_id:id salesforce_id:id salesforce_type dynamics_id:id dynamics_type linked:bool | identity_id | identity_id
contact_members | crm:id type id:id email email_valid:bool identity_id:id role email_raw modified_at:ts converted_contact_id:id type_rank:int | crm id | crm id
contact_findings | crm:id type id:id email identity_id:id winner_id:id reason | crm id | crm id
company_identities | identity_id:id hubspot_id:id salesforce_id:id salesforce_method dynamics_id:id dynamics_method domain | identity_id | identity_id
company_findings | crm:id id:id domain hubspot_id:id other_hubspot_id:id reason | crm id | -
account_candidates | hubspot_id:id qualifies:bool reason | hubspot_id | hubspot_id
deal_identities | identity_id:id hubspot_id:id salesforce_id:id dynamics_id:id linked:bool | identity_id | identity_id
deal_stages | crm:id id:id pipeline stage is_closed:bool is_won:bool hubspot_pipeline hubspot_stage status hubspot_pipeline_label closed_mismatch:bool | crm id | crm id
stage_proposals | other_pipeline stage label hubspot_pipeline hubspot_stage hubspot_label score:float source crm | crm other_pipeline | -
owners | email hubspot_owner_id:id salesforce_id:id dynamics_id:id | email | -
fields_hubspot_contacts | id:id values:json | id | id
fields_hubspot_companies | id:id values:json | id | id
fields_hubspot_deals | id:id values:json | id | id
fields_salesforce_contact | id:id values:json | id | id
fields_salesforce_lead | id:id values:json | id | id
fields_salesforce_account | id:id values:json | id | id
fields_salesforce_opportunity | id:id values:json | id | id
fields_dynamics_contacts | id:id values:json | id | id
fields_dynamics_leads | id:id values:json | id | id
fields_dynamics_accounts | id:id values:json | id | id
fields_dynamics_opportunities | id:id values:json | id | id
field_findings | crm:id object:id id:id field:id value error | crm object id | crm object id field
contact_company | contact_identity:id company_identity:id crm:id | contact_identity company_identity crm | contact_identity company_identity crm
deal_contact | deal_identity:id contact_identity:id crm:id | deal_identity contact_identity crm | deal_identity contact_identity crm
deal_company | deal_identity:id company_identity:id crm:id | deal_identity company_identity crm | deal_identity company_identity crm
deal_facts | deal_id:id pipeline dealstage created_at:ts close_date:ts amount:float is_closed:bool is_won:bool | deal_id | deal_id
hubspot_deal_contacts | deal_id:id contact_id:id | deal_id contact_id | deal_id contact_id
contact_rollups | contact_id:id num_associated_deals:int first_deal_created_date:ts recent_deal_close_date:ts recent_deal_amount:float total_revenue:float | contact_id | contact_id
contact_lifecycle | id:id lifecyclestage new_stage changed:bool rule | id | id
company_lifecycle | id:id lifecyclestage new_stage changed:bool | id | id
hubspot_pipelines | id:id modified_at:ts deleted:bool pipeline_id pipeline_label stage_id stage_label display_order probability is_closed:bool is_won:bool | id | id
company_pair_src | crm:id company_id:id contact_id:id src:id | crm src | crm src company_id contact_id
deal_contact_src | crm:id deal_id:id contact_id:id src:id | crm src | crm src deal_id contact_id
deal_company_src | crm:id deal_id:id company_id:id src:id | crm src | crm src deal_id company_id
company_domains | crm:id id:id domain | crm id | crm id
company_links | kind:id hubspot_id:id salesforce_id:id salesforce_type dynamics_id:id dynamics_type | kind | -
"""  # noqa: E501


def _v4_links_and_unified(conn: Connection) -> None:
    """Links and their history; the ``unified_*`` tables declared (typed, keyed). Tables of that name made
    by earlier versions (``to_sql``, untyped) hold derived data only: they are dropped, and the next
    ``unified`` run (a full one, as its fingerprint is new) fills the declared ones."""
    text_id = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    row_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    types = {"id": lambda: text_id, "text": sa.Text, "bool": sa.Boolean, "int": sa.BigInteger, "float": sa.Float,
             "ts": lambda: sa.DateTime(timezone=True), "json": lambda: _JSON}
    existing = set(sa.inspect(conn).get_table_names())
    md = sa.MetaData()
    for line in filter(None, (raw.strip() for raw in _V4_UNIFIED.splitlines())):
        name, spec, key, pk = (part.strip() for part in line.split("|"))
        table_name = f"unified_{name}"
        if table_name in existing:
            conn.execute(sa.text(f'DROP TABLE "{table_name}"'))
        primary = None if pk == "-" else pk.split()
        columns = []
        for item in spec.split():
            column, _, kind = item.partition(":")
            columns.append(sa.Column(column, types[kind or "text"](), primary_key=bool(primary and column in primary)))
        if primary is None:
            columns.insert(0, sa.Column("row_id", row_id, primary_key=True, autoincrement=True))
        extra = [] if primary and primary[: len(key.split())] == key.split() else [
            sa.Index(f"ix_{table_name}_key", *key.split())]
        sa.Table(table_name, md, *columns, *extra)
    ident = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
    sa.Table(
        "links",
        md,
        sa.Column("kind", ident, primary_key=True),
        sa.Column("hubspot_id", ident, primary_key=True),
        sa.Column("identity_id", sa.Text, nullable=True),
        sa.Column("salesforce_id", ident, nullable=True),
        sa.Column("salesforce_type", sa.Text, nullable=True),
        sa.Column("dynamics_id", ident, nullable=True),
        sa.Column("dynamics_type", sa.Text, nullable=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_links_salesforce", "kind", "salesforce_id"),
        sa.Index("ix_links_dynamics", "kind", "dynamics_id"),
    )
    sa.Table(
        "link_history",
        md,
        sa.Column("row_id", row_id, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", ident, nullable=False),
        sa.Column("hubspot_id", ident, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("before", _JSON, nullable=True),
        sa.Column("after", _JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Index("ix_link_history_record", "kind", "hubspot_id"),
    )
    md.create_all(conn, checkfirst=True)


# v5: the columns an incremental ``unified`` run looks rows up by (``defs/unified/stored_result.py``), where
# no primary key or key index already starts with them
_V5_LOOKUPS = {
    "contact_members": ("id", "identity_id", "email", "converted_contact_id"),
    "contact_identities": ("hubspot_id",),
    "company_identities": ("hubspot_id", "salesforce_id", "dynamics_id"),
    "deal_identities": ("hubspot_id", "salesforce_id", "dynamics_id"),
    "company_pair_src": ("src", "contact_id", "company_id"),
    "deal_contact_src": ("src", "deal_id", "contact_id"),
    "deal_company_src": ("src", "deal_id", "company_id"),
    "contact_company": ("company_identity",),
    "deal_contact": ("contact_identity",),
    "deal_company": ("company_identity",),
    "company_domains": ("id", "domain"),
    "hubspot_deal_contacts": ("contact_id",),
}


def _v5_lookup_indexes(conn: Connection) -> None:
    for table, columns in _V5_LOOKUPS.items():
        for col in columns:
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "ix_unified_{table}_{col}" '
                                 f'ON "unified_{table}" ("{col}")')


def _v6_baselines(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "sync_baselines",
        md,
        sa.Column("kind", _ID, primary_key=True),
        sa.Column("hubspot_id", _ID, primary_key=True),
        sa.Column("other_crm", _ID, primary_key=True),
        sa.Column("field", _ID, primary_key=True),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("write_id", sa.Text, nullable=False),
    )
    md.create_all(conn, checkfirst=True)


def _v7_findings_by_identity(conn: Connection) -> None:
    """The incremental run looks contact findings up by identity instead of reading them whole (they grow with
    the duplicates: 87,000 rows at a million people); the asset checks count what they report by index."""
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_contact_findings_identity_id" '
                         'ON "unified_contact_findings" ("identity_id")')
    # the asset checks count the few rows they report, not the table (partial indexes, ``stored_checks.py``)
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_contact_members_invalid_email" '
                         'ON "unified_contact_members" ("crm") WHERE email_valid = false')
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_deal_stages_unmapped" ON "unified_deal_stages" '
                         "(\"crm\") WHERE status IN ('unmapped_stage', 'unmapped_pipeline')")


def _v8_plan_store(conn: Connection) -> None:
    """The stored plan (one row per planned write, left-out candidate or finding, under the identity it was
    planned for), its counts, and the log of what ``unified`` changed since the plan last read it (issue 12)."""
    text_id = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    md = sa.MetaData()
    sa.Table(
        "plan_rows",
        md,
        sa.Column("target_crm", _ID, primary_key=True),
        sa.Column("part", _ID, primary_key=True),
        sa.Column("scope", text_id, primary_key=True),
        sa.Column("row_hash", sa.BigInteger, primary_key=True),
        sa.Column("row", _JSON, nullable=False),
        sa.Index("ix_plan_rows_scope", "scope"),
    )
    sa.Table(
        "plan_changes",
        md,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", _ID, nullable=False),
        sa.Column("crm", _ID, nullable=False),
        sa.Column("record_id", text_id, nullable=False),
    )
    sa.Table(
        "plan_summary",
        md,
        sa.Column("target_crm", _ID, primary_key=True),
        sa.Column("part", _ID, primary_key=True),
        sa.Column("dim", _ID, primary_key=True),
        sa.Column("value", text_id, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    md.create_all(conn, checkfirst=True)
    # the plan finds twins by domain (COM-3: one HubSpot company per domain) and baselines written since it ran
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_company_identities_domain" '
                         'ON "unified_company_identities" ("domain")')
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_sync_baselines_synced_at" ON "sync_baselines" ("synced_at")')


def _v9_plan_rows_as_written(conn: Connection) -> None:
    """A first plan writes millions of rows: PostgreSQL keeps their JSON as written (``json``: checked, not
    parsed into ``jsonb``) and without an index on ``scope`` (a scope's rows are found through the primary key,
    its target and part named), which together halved the COPY's time. Every plan reads the deleted Salesforce
    Opportunities (DEL-3, ``deletion_inputs``): the deleted ones, indexed apart."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql('ALTER TABLE "plan_rows" ALTER COLUMN "row" TYPE json USING "row"::json')
    conn.exec_driver_sql('DROP INDEX IF EXISTS "ix_plan_rows_scope"')
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_mirror_salesforce_opportunity_deleted" '
                         'ON "mirror_salesforce_opportunity" ("deleted_at") WHERE deleted')


def _v10_plan_conflicts(conn: Connection) -> None:
    """Each plan run shows a sample of its conflicts (CONF-1/2): a few rows among a first plan's hundreds of
    thousands of updates, found by reading the updates one by one (a third of a second at a million people)
    until they have their own index. Only rows of the ``updates`` part have their document read when stored.
    (PostgreSQL: SQLite, the small-data default, reads the updates as before.)"""
    if conn.dialect.name == "postgresql":  # the condition as ``plan_store.CONFLICTS`` states it
        conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_plan_rows_conflicts" ON "plan_rows" '
                             '("target_crm", "scope", "row_hash") '
                             "WHERE \"part\" = 'updates' AND (\"row\" ->> 'conflict') = 'true'")


def _v11_write_outbox(conn: Connection) -> None:
    """Every write the sync sends is recorded before it is sent, and its outcome after (issue 13, Invariants
    1, 2, 4): the table as it was at version 11."""
    text_id = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    md = sa.MetaData()
    sa.Table(
        "write_outbox",
        md,
        sa.Column("key", _ID, primary_key=True),
        sa.Column("target_crm", _ID, nullable=False),
        sa.Column("operation", _ID, nullable=False),
        sa.Column("object", _ID, nullable=False),
        sa.Column("ref", text_id, nullable=False),
        sa.Column("lookup_field", _ID, nullable=True),
        sa.Column("lookup_value", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("confirm", sa.Text, nullable=False),
        sa.Column("status", _ID, nullable=False),
        sa.Column("target_id", text_id, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Index("ix_write_outbox_status", "target_crm", "status"),
    )
    md.create_all(conn, checkfirst=True)


def _v12_invalid_emails_covered(conn: Connection) -> None:
    """The check of contacts without a valid email (CON-3) counts its rows from an index alone: the rows it
    groups (crm, whether the email is missing) are read from the index instead of the table (at a million
    people about 265,000 of 1.8 million rows, 0.27 s a run by the table, 0.06 s by this index). It replaces
    the version 7 index on ``crm`` alone."""
    # the predicate as SQLAlchemy writes the check's ``email_valid == false()`` on each backend: SQLite uses a
    # partial index only for a query stating the same condition (``= 0`` there)
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_contact_members_invalid_email_rows" '
                         'ON "unified_contact_members" ("crm", "id") INCLUDE ("email") WHERE email_valid = false'
                         if conn.dialect.name == "postgresql" else
                         'CREATE INDEX IF NOT EXISTS "ix_unified_contact_members_invalid_email_rows" '
                         'ON "unified_contact_members" ("crm", "id", "email") WHERE email_valid = 0')
    conn.exec_driver_sql('DROP INDEX IF EXISTS "ix_unified_contact_members_invalid_email"')


# the mirror tables of the objects read in daily partitions at version 13 (frozen: a later object is a later step)
_V13_PARTITIONED = (
    "hubspot_contacts", "hubspot_companies", "hubspot_deals", "hubspot_tasks", "salesforce_lead",
    "salesforce_contact", "salesforce_account", "salesforce_opportunity", "salesforce_opportunitycontactrole",
    "salesforce_task", "dynamics_contacts", "dynamics_leads", "dynamics_accounts", "dynamics_opportunities",
)  # fmt: skip


def _v13_mirror_live_counts(conn: Connection) -> None:
    """Every extract's materialization shows the mirror's live and deleted totals (``mirror.counts``), counted
    from an index on ``deleted`` instead of the records (at a million people 0.17 s a table by the table,
    0.05 s by the index, paid by each sync run's extracts)."""
    for name in _V13_PARTITIONED:
        conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "ix_mirror_{name}_deleted" ON "mirror_{name}" ("deleted")')


def _v14_sync_path_partial_indexes(conn: Connection) -> None:
    """Three reads every sync run makes select a few rows of a big table by a condition no index held, so each
    scanned the table (Invariant 6: cost follows the change). At a million people, on a loaded server:

    - the links the sync wrote through (``origin = 'sync'``, read by ``unified`` and the plans): 136 ms -> 0.03 ms
      of 1.3 million links;
    - the link changes made by a deletion (DEL-4, ``links.deletions``, read twice by each plan): 80 ms -> 0.04 ms
      of 480,000 history rows;
    - the deals linked across CRMs (DEAL-5, read whole by the incremental ``unified``): 33 ms -> 0.03 ms.

    Each index holds only the rows its condition selects, stated as the queries state it (PostgreSQL and SQLite
    use a partial index for a query whose condition is the index's; SQLite writes ``true`` as 1)."""
    true = "true" if conn.dialect.name == "postgresql" else "1"
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_links_sync" ON "links" ("kind", "hubspot_id") '
                         "WHERE origin = 'sync'")
    # through ``text`` (not the driver's own string): psycopg2 would read the pattern's ``%`` as a parameter
    conn.execute(sa.text('CREATE INDEX IF NOT EXISTS "ix_link_history_deleted" ON "link_history" ("kind") '
                         "WHERE reason LIKE '%deleted%'"))
    conn.exec_driver_sql('CREATE INDEX IF NOT EXISTS "ix_unified_deal_identities_linked" '
                         f'ON "unified_deal_identities" ("identity_id") WHERE linked IS {true}')


STEPS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_api_usage),
    (2, _v2_mirror_and_cursors),
    (3, _v3_tasks_and_extracted_at),
    (4, _v4_links_and_unified),
    (5, _v5_lookup_indexes),
    (6, _v6_baselines),
    (7, _v7_findings_by_identity),
    (8, _v8_plan_store),
    (9, _v9_plan_rows_as_written),
    (10, _v10_plan_conflicts),
    (11, _v11_write_outbox),
    (12, _v12_invalid_emails_covered),
    (13, _v13_mirror_live_counts),
    (14, _v14_sync_path_partial_indexes),
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

"""The stored result, read only where an incremental run looks (Invariant 6: cost follows the change).

The incremental transform reads the previous result only through column lookups (``transform.lookup.isin``:
"the rows of this table whose column holds one of these values"), apart from a few small tables it reads
whole. So it can start from a result that holds none of the big tables' rows: every lookup notes the values
it asked for that were never fetched; the rows holding them are then read from the state database (by
index) and the transform runs again. When a run asks for nothing new, every lookup it made saw exactly the
rows the whole stored table would have given it, so its changes are exactly those of a run over the whole
stored result. Each round adds one step of the closures the transform follows (shared emails, links,
domains, ...), so the number of rounds is their depth, not the size of anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.state import unified
from crm_pipelines.state.sql import side_by_side
from crm_pipelines.transform.companies import CompanyIdentities
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.identities import ContactIdentities
from crm_pipelines.transform.incremental import TableChange, incremental_changes
from crm_pipelines.transform.lookup import Lookups
from crm_pipelines.transform.pipeline import TransformResult, TransformSettings

# read whole: small (reference data, the ambiguity findings, the links) or not read by the incremental run
_WHOLE = ("company_findings", "owners", "hubspot_pipelines", "company_links")
_MAX_ROUNDS = 100
_CHUNK = 5_000
_AHEAD = 3  # steps read ahead per fetch (2: 5 rounds; more saves no further round)

# Columns holding the same kind of value. A round's lookups are mostly the values the rows read in the round
# before hold in other columns (a contact's identity, then that identity's companies, ...), so each fetch
# also reads, a few steps ahead, the rows whose column of the same kind holds the fetched rows' values: in
# columns the run has looked up by before. A guess only - it saves rounds (100k people, 1,000 contacts
# changed: 9 rounds, 7.4-8.4 s; 3 steps ahead: 4 rounds, 3.9-4.0 s, 50% more rows read); what is read early
# is never wrong.
_KINDS = {
    "contact identity": ("contact_members.identity_id", "contact_identities.identity_id",
                         "contact_company.contact_identity", "deal_contact.contact_identity",
                         "contact_findings.identity_id"),
    "company identity": ("company_identities.identity_id", "contact_company.company_identity",
                         "deal_company.company_identity"),
    "deal identity": ("deal_identities.identity_id", "deal_contact.deal_identity", "deal_company.deal_identity"),
    "contact record": ("contact_members.id", "contact_members.converted_contact_id", "company_pair_src.contact_id",
                       "deal_contact_src.contact_id", "hubspot_deal_contacts.contact_id", "contact_lifecycle.id",
                       "contact_identities.hubspot_id"),
    "company record": ("company_identities.hubspot_id", "company_identities.salesforce_id",
                       "company_identities.dynamics_id", "company_domains.id", "company_pair_src.company_id",
                       "deal_company_src.company_id", "company_lifecycle.id"),
    "deal record": ("deal_facts.deal_id", "deal_identities.hubspot_id", "deal_identities.salesforce_id",
                    "deal_identities.dynamics_id", "hubspot_deal_contacts.deal_id", "deal_contact_src.deal_id",
                    "deal_company_src.deal_id"),
    "email": ("contact_members.email",),
    "domain": ("company_domains.domain",),
}  # fmt: skip
_KIND_OF = {tuple(c.split(".")): kind for kind, cols in _KINDS.items() for c in cols}


def _conditions(name: str, by_col: list[tuple[str, list]], arrays: bool = False):
    """``col IN (...) OR col2 IN (...)`` over at most ``_CHUNK`` values each; with ``arrays`` (PostgreSQL),
    ``col = ANY(ARRAY[...])``: one parameter the driver renders, the same index scan."""
    parts, size = [], 0
    for col, values in by_col:
        for i in range(0, len(values), _CHUNK):
            chunk = values[i : i + _CHUNK]
            column = unified.column(name, col)
            parts.append(column == sa.any_(sa.bindparam(None, chunk)) if arrays else column.in_(chunk))
            size += len(chunk)
            if size >= _CHUNK:
                yield sa.or_(*parts)
                parts, size = [], 0
    if parts:
        yield sa.or_(*parts)


@dataclass
class Reads:
    rounds: int = 0
    rows: int = 0  # stored rows read
    queries: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    looked_up: set[tuple[str, str]] = field(default_factory=set)  # (table, column) the run read rows by


class _Recorder(Lookups):
    """Notes, per (table, column), the looked-up values whose rows were never fetched."""

    def __init__(self, stored: StoredResult) -> None:
        super().__init__()
        self.stored = stored
        self.missing: dict[tuple[str, str], set] = {}

    def observe(self, frame: pd.DataFrame, col: str, values: pd.Index) -> None:
        name = self.stored.partial_name(frame)
        if name is None:
            return
        have = self.stored.fetched.setdefault((name, col), set())
        lacking = [v for v in values if v not in have]
        if lacking:
            self.missing.setdefault((name, col), set()).update(lacking)


class StoredResult:
    """The stored ``unified`` result as a ``TransformResult`` that fills itself in as it is asked."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fetched: dict[tuple[str, str], set] = {}
        self.reads = Reads()
        with engine.connect() as conn:
            self.frames = {d.name: unified.read(conn, d.name, None if d.name in _WHOLE else sa.false())
                           for d in unified.TABLES if not d.name.startswith("fields_")}  # fmt: skip
            # a deal linked across CRMs (DEAL-5) is found by a scan of the linked rows: they are read up front
            self.frames["deal_identities"] = unified.read(conn, "deal_identities",
                                                          unified.column("deal_identities", "linked").is_(True))
            # the incremental run counts the Salesforce pipelines (record types) the stages were mapped with:
            # one row per pipeline is read (the database groups the rows, an index-only scan)
            crm, pipeline, key = (unified.column("deal_stages", c) for c in ("crm", "pipeline", "id"))
            first = sa.select(sa.func.min(key)).where(crm == "salesforce").group_by(pipeline)
            self.frames["deal_stages"] = unified.read(conn, "deal_stages", (crm == "salesforce") & key.in_(first))
        self._result: TransformResult | None = None
        self._partial: dict[int, str] = {}

    def partial_name(self, frame: pd.DataFrame) -> str | None:
        return self._partial.get(id(frame))

    def result(self) -> TransformResult:
        """The rows fetched so far, as a result (the same frame objects until the next fetch)."""
        if self._result is None:
            r = self.frames
            self._result = TransformResult(
                contacts=ContactIdentities(r["contact_identities"], r["contact_members"], r["contact_findings"]),
                companies=CompanyIdentities(r["company_identities"], r["company_findings"]),
                account_candidates=r["account_candidates"], deals=r["deal_identities"], deal_stages=r["deal_stages"],
                owners=r["owners"], fields={}, field_findings=r["field_findings"],
                contact_company=r["contact_company"], deal_contact=r["deal_contact"],
                deal_company=r["deal_company"], deal_facts=r["deal_facts"],
                hubspot_deal_contacts=r["hubspot_deal_contacts"], rollups=r["contact_rollups"],
                lifecycle=r["contact_lifecycle"], company_lifecycle=r["company_lifecycle"],
                hubspot_pipelines=r["hubspot_pipelines"], company_pair_src=r["company_pair_src"],
                deal_contact_src=r["deal_contact_src"], deal_company_src=r["deal_company_src"],
                company_domains=r["company_domains"], company_links=r["company_links"],
            )  # fmt: skip
            self._partial = {id(f): name for name, f in self.frames.items()
                             if name not in _WHOLE and name != "deal_stages"}  # fmt: skip
        return self._result

    def changes(self, delta: Mirrors, links: pd.DataFrame | None,
                settings: TransformSettings) -> dict[str, TableChange]:
        """``incremental_changes`` over the whole stored result, reading only the rows it looks at."""
        for _ in range(_MAX_ROUNDS):
            result = self.result()
            recorder = _Recorder(self)
            result._lookups = recorder
            changes = incremental_changes(result, delta, links, settings)
            self.reads.rounds += 1
            if not recorder.missing:
                return changes
            self.fetch(recorder.missing)
        raise RuntimeError(f"the incremental run still asked for new rows after {_MAX_ROUNDS} rounds")

    def fetch(self, missing: dict[tuple[str, str], set]) -> None:
        """Read the rows holding the ``missing`` values, then (``_AHEAD`` steps) the rows their values lead to."""
        grown: dict[str, list[pd.DataFrame]] = {}
        got = self._read(missing, grown)
        for _ in range(_AHEAD):
            got = self._read(self._ahead(got), grown)
        for name, parts in grown.items():
            declared = unified.BY_NAME[name]
            pieces = [f for f in (self.frames[name], *parts) if len(f)]
            frame = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
            self.frames[name] = frame.drop_duplicates(list(declared.primary_key or declared.names),
                                                      ignore_index=True)
        self._result = None

    def _read(self, missing: dict[tuple[str, str], set], grown: dict[str, list[pd.DataFrame]]
              ) -> list[tuple[str, pd.DataFrame]]:
        """One query per table (and ``_CHUNK`` values) for all the columns it is looked up by: a query costs
        about 12 ms besides its rows, and a round looks up ten tables by two or three columns each. On
        PostgreSQL the queries of a step run side by side, on their own connections: most of a query's time
        is the server's, and the tables are independent."""
        wanted: dict[str, list[tuple[str, list]]] = {}
        for (name, col), values in missing.items():
            have = self.fetched.setdefault((name, col), set())
            new = sorted((v for v in values if v not in have), key=str)
            have.update(new)
            self.reads.looked_up.add((name, col))
            if new:
                wanted.setdefault(name, []).append((col, new))
        arrays = self.engine.dialect.name == "postgresql"
        queries = [(name, where) for name, by_col in wanted.items() for where in _conditions(name, by_col, arrays)]
        out = []
        for name, rows in zip((n for n, _ in queries), self._run(queries), strict=True):
            self.reads.queries += 1
            self.reads.rows += len(rows)
            self.reads.by_table[name] = self.reads.by_table.get(name, 0) + len(rows)
            if len(rows):
                grown.setdefault(name, []).append(rows)
                out.append((name, rows))
        return out

    def _run(self, queries: list[tuple[str, sa.ColumnElement]]) -> list[pd.DataFrame]:
        return side_by_side(self.engine, lambda conn, query: unified.read(conn, *query), queries)

    def _ahead(self, got: list[tuple[str, pd.DataFrame]]) -> dict[tuple[str, str], set]:
        ahead: dict[tuple[str, str], set] = {}
        for name, rows in got:
            for col in rows.columns:
                kind = _KIND_OF.get((name, col))
                if kind is None:
                    continue
                values = set(rows[col].dropna())
                for target in _KINDS[kind]:
                    key = tuple(target.split("."))
                    if key in self.reads.looked_up and key != (name, col):
                        ahead.setdefault(key, set()).update(values)
        return ahead

    def rows(self, name: str, col: str, values) -> pd.DataFrame:
        """The stored rows of ``name`` whose ``col`` is one of ``values`` (read now, not kept)."""
        values = sorted(set(values), key=str)
        with self.engine.connect() as conn:
            if not values:
                return unified.read(conn, name, sa.false())
            parts = [unified.read(conn, name, unified.column(name, col).in_(values[i : i + _CHUNK]))
                     for i in range(0, len(values), _CHUNK)]  # fmt: skip
        return pd.concat(parts, ignore_index=True)

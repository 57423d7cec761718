"""What an incremental plan replans, and the ``unified`` rows it reads to do so.

The plan is stored per identity (``state/plan_store.py``): every row belongs to one contact, company or deal
identity (or to the plan as a whole: the HubSpot pipelines, recomputed from the stored deal creates). After
``unified`` has changed some records, the plan recomputes only the identities whose rows could differ and
replaces their stored rows.

Changed identities (C0 contacts, K0 companies, D0 deals) come from:

- the log ``unified`` writes with its result rows (``plan_changes``): the records whose identities, members,
  field values, stages, deal facts, association pairs, lifecycle proposals or account candidates changed,
  and every record of its mirror delta (a modification time decides a merge, CONF-2);
- links changed since the last plan (``link_history``: the writes' own links, deletions, DEL-4);
- baselines recorded since the last plan (``sync_baselines.synced_at``: the writes issue, CONF-5).

What they reach (the plan rows that read them), one step along the association pairs:

- contacts C = C0, the contacts of K0 (a contact->company association names the company's record in the
  target) and the contacts of D0's deals (DEAL-7: a closed-won deal makes its contacts customers);
- deals D = D0, the deals of C0's contacts and of K0's companies (a deal's associations name their records);
- companies K = K0 and the companies of C (COM-2/COM-3 read whether a company's contacts sync or are
  created; COM-4 its contacts' lifecycle stages), with every company without a HubSpot record that shares a
  domain with one of them (COM-3: one HubSpot company per domain, the first by identity id);
- then every contact of K joins C (the company rules read those contacts' planned creates and stages).

Each of those is planned from complete inputs: its own rows, the pairs it is an end of and the identities at
their other ends (read, not replanned), so its rows equal a full plan's. Rows the pure functions produce for
the identities read only as other ends are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crm_pipelines.state import unified
from crm_pipelines.state.schema import baselines, link_history

_CHUNK = 5_000
KINDS = ("contact", "company", "deal")
# parts of the plan recomputed whole on every plan (cheap, and not under one identity: a deleted record's
# identity is gone), stored under one scope each and replaced by every plan, incremental ones included
WHOLE_PARTS = {"deletes": "deletes", "not_deleted": "deletes"}
TASK = "task"  # OPS-4: a task's rows are stored under ``task:<HubSpot task id>`` (not under an identity)
_IDENTITIES = {"contact": "contact_identities", "company": "company_identities", "deal": "deal_identities"}


@dataclass
class Scope:
    """Identity ids per kind."""

    contacts: set[str] = field(default_factory=set)
    companies: set[str] = field(default_factory=set)
    deals: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)  # OPS-4: HubSpot tasks whose inputs moved since the last plan

    def of(self, kind: str) -> set[str]:
        return {"contact": self.contacts, "company": self.companies, "deal": self.deals}[kind]

    def names(self) -> set[str]:
        """The stored plan's scopes (``<kind>:<identity>``), and those of the parts planned whole."""
        tasks = {f"{TASK}:{i}" for i in self.tasks}
        return {f"{kind}:{i}" for kind in KINDS for i in self.of(kind)} | tasks | set(WHOLE_PARTS.values())

    def sizes(self) -> dict[str, int]:
        return {"contacts": len(self.contacts), "companies": len(self.companies), "deals": len(self.deals)}


def _in(conn: Connection, name: str, column: str, values: Iterable[str], *where: sa.ColumnElement) -> pd.DataFrame:
    """``name``'s rows whose ``column`` is one of ``values``."""
    values = sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))})
    col = unified.column(name, column)
    parts = [unified.read(conn, name, sa.and_(col.in_(values[i : i + _CHUNK]), *where))
             for i in range(0, len(values), _CHUNK)]  # fmt: skip
    if not parts:
        return unified.read(conn, name, sa.false())
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _ids(frame: pd.DataFrame, column: str) -> set[str]:
    return set(frame[column].dropna().astype(str)) if len(frame) else set()


def changed(engine: Engine, records: pd.DataFrame) -> Scope:
    """The identities the logged records (``plan_store.CHANGE_COLUMNS``) belong to now."""
    out = Scope()
    lookups = []  # (kind, the lookup of the identities of its records of one CRM)
    for (kind, crm), group in records.groupby(["kind", "crm"], sort=True):
        ids = group["record_id"].astype(str).tolist()
        if kind not in KINDS:
            continue
        if crm == "identity":
            out.of(kind).update(ids)
        elif kind == "contact":
            lookups.append((kind, ("contact_members", "id", ids, unified.column("contact_members", "crm") == crm)))
        else:
            lookups.append((kind, (_IDENTITIES[kind], f"{crm}_id", ids)))
    with _Lookups(engine) as reads:
        for (kind, _), found in zip(lookups, reads.all(*[lookup for _, lookup in lookups]), strict=True):
            out.of(kind).update(_ids(found, "identity_id"))
    return out


def links_and_baselines(engine: Engine, history_after: int, baselines_after: pd.Timestamp | None,
                        ) -> tuple[pd.DataFrame, int, pd.Timestamp | None]:
    """HubSpot records (``kind``, ``crm``, ``record_id``) whose link changed after the ``history_after`` row or
    whose baseline was recorded after ``baselines_after``; and the new positions."""
    with engine.connect() as conn:
        history = conn.execute(sa.select(link_history.c.row_id, link_history.c.kind, link_history.c.hubspot_id)
                               .where(link_history.c.row_id > history_after)).all()  # fmt: skip
        query = sa.select(baselines.c.synced_at, baselines.c.kind, baselines.c.hubspot_id)
        if baselines_after is not None:
            query = query.where(baselines.c.synced_at > baselines_after.to_pydatetime())
        synced = conn.execute(query).all()
    rows = [(kind, "hubspot", hubspot_id) for _, kind, hubspot_id in history]
    rows += [(kind, "hubspot", hubspot_id) for _, kind, hubspot_id in synced]
    last_row = max([history_after, *(r[0] for r in history)])
    times = [pd.Timestamp(r[0]) for r in synced]
    last_at = max([t.tz_localize("UTC") if t.tzinfo is None else t for t in times], default=baselines_after)
    return pd.DataFrame(rows, columns=["kind", "crm", "record_id"]).astype(object), last_row, last_at


def reach(engine: Engine, start: Scope) -> tuple[Scope, dict[str, pd.DataFrame]]:
    """The identities to replan from the changed ones (module docstring), and the ``unified`` rows their plan
    reads (as ``plans.compute_plans`` takes them)."""
    C0, K0, D0 = start.contacts, start.companies, start.deals
    with _Lookups(engine) as lookups:
        cc, dc, dc_of_c0, dk_of_k0 = lookups.all(
            ("contact_company", "company_identity", K0), ("deal_contact", "deal_identity", D0),
            ("deal_contact", "contact_identity", C0), ("deal_company", "company_identity", K0))
        contacts = C0 | _ids(cc, "contact_identity") | _ids(dc, "contact_identity")
        deals = D0 | _ids(dc_of_c0, "deal_identity") | _ids(dk_of_k0, "deal_identity")
        (of_contacts,) = lookups.all(("contact_company", "contact_identity", contacts))
        companies = K0 | _ids(of_contacts, "company_identity")
        (company_rows,) = lookups.all(("company_identities", "identity_id", companies))
        (twins,) = lookups.all(("company_identities", "domain", _ids(company_rows, "domain"),
                                unified.column("company_identities", "hubspot_id").is_(None)))
        companies |= _ids(twins, "identity_id")
        (of_companies,) = lookups.all(("contact_company", "company_identity", companies))
        contacts |= _ids(of_companies, "contact_identity")
        scope = Scope(contacts, companies, deals)

        read: dict[str, pd.DataFrame] = {}
        cc_c, cc_k, dc_d, dc_c, dk_d, members = lookups.all(
            ("contact_company", "contact_identity", contacts), ("contact_company", "company_identity", companies),
            ("deal_contact", "deal_identity", deals), ("deal_contact", "contact_identity", contacts),
            ("deal_company", "deal_identity", deals), ("contact_members", "identity_id", contacts))
        read["contact_company"], read["deal_contact"] = _union(cc_c, cc_k), _union(dc_d, dc_c)
        read["deal_company"], read["contact_members"] = dk_d, members
        dc, cc, dk = read["deal_contact"], read["contact_company"], read["deal_company"]
        contact_ctx = contacts | _ids(dc, "contact_identity")
        company_ctx = companies | _ids(cc, "company_identity") | _ids(dk, "company_identity")
        deal_ctx = deals | _ids(dc, "deal_identity")
        read["contact_identities"], read["company_identities"], read["deal_identities"] = lookups.all(
            ("contact_identities", "identity_id", contact_ctx), ("company_identities", "identity_id", company_ctx),
            ("deal_identities", "identity_id", deal_ctx))
        hubspot = {kind: _ids(read[_IDENTITIES[kind]], "hubspot_id") for kind in KINDS}
        deal_rows, contact_rows, company_rows = (read["deal_identities"], read["contact_identities"],
                                                 read["company_identities"])
        (read["account_candidates"], sf_stages, dy_stages, read["deal_facts"], read["contact_lifecycle"],
         read["company_lifecycle"]) = lookups.all(
            ("account_candidates", "hubspot_id", hubspot["company"]),
            *[("deal_stages", "id", _ids(deal_rows, f"{crm}_id"), unified.column("deal_stages", "crm") == crm)
              for crm in ("salesforce", "dynamics")],
            ("deal_facts", "deal_id", hubspot["deal"]),
            ("contact_lifecycle", "id", _ids(contact_rows[contact_rows["identity_id"].isin(contacts)], "hubspot_id")),
            ("company_lifecycle", "id", _ids(company_rows[company_rows["identity_id"].isin(companies)], "hubspot_id")))
        read["deal_stages"] = _union(sf_stages, dy_stages)
    read["hubspot_pipelines"] = unified.read(engine, "hubspot_pipelines")
    return scope, read


class _Lookups:
    """``_in`` lookups made side by side on PostgreSQL, each on its own connection: an incremental plan makes
    about thirty, each mostly the server's index probes into pages not in its cache, so two run at once on a
    second core; one after another on one connection on SQLite (one connection at a time)."""

    WORKERS = 4

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="plan-scope") \
            if engine.dialect.name == "postgresql" else None
        self._conn: Connection | None = None

    def __enter__(self) -> _Lookups:
        if self._pool is None:
            self._conn = self._engine.connect()
        return self

    def __exit__(self, *_: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._conn is not None:
            self._conn.close()

    def all(self, *lookups: tuple) -> list[pd.DataFrame]:
        """Each ``(table, column, values, *where)``'s rows, in order."""
        if self._pool is None:
            return [_in(self._conn, *lookup) for lookup in lookups]
        return list(self._pool.map(self._one, lookups))

    def _one(self, lookup: tuple) -> pd.DataFrame:
        with self._engine.connect() as conn:
            return _in(conn, *lookup)


def _union(*frames: pd.DataFrame) -> pd.DataFrame:
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0]
    return pd.concat(kept, ignore_index=True).drop_duplicates(ignore_index=True)

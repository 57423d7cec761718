"""What the plans read from the state database: the links of contacts, companies and deals, the linked
records' mapped values (``unified`` field tables), their modification times (the mirror) and the baselines,
merged per connection with its settings (``sync/merge.py``); the contact identities for the contact creates;
the calls left in each CRM's 24 h budget."""

from __future__ import annotations

import time
from collections.abc import Collection

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.defs.writeback.field_tables import read_fields, whole_fields
from crm_pipelines.settings import Settings
from crm_pipelines.state import baselines, mirror, unified
from crm_pipelines.state import links as link_store
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.state.sql import rows_for_ids
from crm_pipelines.sync.calls import fit_budget
from crm_pipelines.sync.contact_creates import CREATE_MEMBER_COLUMNS, ContactCreateSettings, contact_creates
from crm_pipelines.sync.field_inputs import merge_inputs
from crm_pipelines.sync.merge import HUBSPOT, OTHER, MergeSettings, merge_fields
from crm_pipelines.transform.fields import DEFAULT_FIELDS

# per kind of linked record: the HubSpot object, and per other CRM the link's record type -> the object
# holding it (None: whatever type the link names; deals are linked only by the sync's own writes)
LINKED = {
    "contact": ("contacts", {"salesforce": {"Contact": "Contact", "Lead": "Lead"},
                             "dynamics": {"contact": "contacts", "lead": "leads"}}),
    "company": ("companies", {"salesforce": {None: "Account"}, "dynamics": {None: "accounts"}}),
    "deal": ("deals", {"salesforce": {None: "Opportunity"}, "dynamics": {None: "opportunities"}}),
}  # fmt: skip
# ids per query: a first sync reads most linked records (hundreds of thousands at a million people), where
# a query of 1,000 ids cost 70 ms, mostly its round trip
_CHUNK = 20_000


def _values(engine: Engine, crm: str, obj: str, ids: list[str], whole: bool = False,
            cache: dict | None = None, read_times: bool = True) -> pd.DataFrame:
    """``id``, ``modified_at``, ``extracted_at`` (with ``read_times``: when the mirror's copy was read, which
    the merge needs only against baselines, to tell a copy read before the sync wrote the record from a change)
    and one column per mapped HubSpot property of these records; ``whole``: most records of the object are
    asked for (a full plan), so the tables are read whole (once per ``cache``) and filtered here (half the
    time of their ids sent in lists)."""
    table = mirror.table_for(crm, obj)
    values = whole_fields(engine, crm, obj, cache) if whole else read_fields(engine, crm, obj, ids)
    if whole:
        values = values[values["id"].isin(set(ids))]
    times = ["id", "modified_at", "extracted_at"] if read_times else ["id", "modified_at"]
    with engine.connect() as conn:
        when = rows_for_ids(conn, sa.select(*[table.c[c] for c in times]), table.c.id, ids, times, text=True)
    for column in times[1:]:
        when[column] = pd.to_datetime(when[column], utc=True, format="ISO8601")
    return values.astype({"id": object}).merge(when, on="id", how="left")


def property_times(engine: Engine, obj: str, ids: list[str], whole: bool = False) -> pd.DataFrame:
    """``id``, ``field``, ``changed_at``: when each property of these HubSpot records last changed, where an
    incremental extract read it (``propertyTimes`` in the mirror, from HubSpot's property history; CONF-1/2
    then compare field times, not record times). Records read by the bulk import have none. ``whole``: most
    records are asked for (a full plan): the records that have times are read in one scan (0.2 s at a million
    people, where looking up every id took 3 s) and the others' dropped here."""
    table = mirror.table_for("hubspot", obj)
    times = table.c.record["propertyTimes"]
    with engine.connect() as conn:
        if whole:
            wanted = set(ids)
            found = [(str(i), doc) for i, doc in conn.execute(sa.select(table.c.id, times).where(times.isnot(None)))
                     if str(i) in wanted]  # fmt: skip
        else:
            found = [(str(i), doc) for start in range(0, len(ids), _CHUNK) for i, doc in conn.execute(
                sa.select(table.c.id, times).where(table.c.id.in_(ids[start : start + _CHUNK]), times.isnot(None)))]
    rows = [(i, field, at) for i, doc in found for field, at in (doc or {}).items()]
    out = pd.DataFrame(rows, columns=["id", "field", "changed_at"])
    out["changed_at"] = pd.to_datetime(out["changed_at"], utc=True, format="ISO8601")
    return out


def _object_sync(settings: Settings, crm: str, kind: str):
    conn = getattr(settings.sync, crm)
    return {"contact": conn.contacts, "company": conn.companies, "deal": conn.deals}[kind]


def merge_settings(settings: Settings, crm: str, kind: str = "contact") -> MergeSettings:
    conn = getattr(settings.sync, crm)
    return MergeSettings(direction=_object_sync(settings, crm, kind).direction,
                         default_app=HUBSPOT if conn.default_app == "hubspot" else OTHER,
                         window_minutes=conn.conflict_window_minutes)  # fmt: skip


def linked_merges(engine: Engine, settings: Settings, kind: str,
                  extra: dict[str, pd.DataFrame] | None = None,
                  hubspot_ids: Collection[str] | None = None, cache: dict | None = None,
                  writes_only: bool = False, links: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Other CRM -> the merge of every linked record's (of ``kind``: contact, company, deal) mapped fields
    with HubSpot (``merge_fields`` output, with ``hubspot_id``, ``other_id``, ``other_object``, ``field``),
    under the connection's direction for that object (CON-1) and its switch. ``extra``: CRM -> ``id`` + more
    values (in HubSpot's terms) to merge alongside the mapped fields (a deal's pipeline and stage);
    ``hubspot_ids``: only the links of these HubSpot records (an incremental plan); ``cache``: the field tables
    a full plan read whole (``field_tables.whole_fields``); ``writes_only``: only the rows that write a side
    (what the plan keeps of a merge: a first sync merges millions of fields, most of them equal); ``links``: the
    links of ``kind`` (of ``hubspot_ids``), when the caller has read them already."""
    extra = extra or {}
    whole = hubspot_ids is None  # a full plan: most linked records are read

    def with_extra(values: pd.DataFrame, crm: str) -> pd.DataFrame:
        more = extra.get(crm)
        return values if more is None else values.merge(more.astype({"id": object}), on="id", how="left")

    hubspot_obj, objects_by_crm = LINKED[kind]
    links = link_store.load(engine, kind=kind, hubspot_ids=hubspot_ids) if links is None else links
    out: dict[str, pd.DataFrame] = {}
    hubspot_ids = links["hubspot_id"].dropna().astype(str).tolist()
    # a first sync has no baselines: its copies' read times would be read for nothing (millions of rows)
    read_times = baselines.any_of(engine, kind)
    hubspot = with_extra(_values(engine, "hubspot", hubspot_obj, hubspot_ids, whole, cache, read_times), "hubspot") \
        if hubspot_ids else None
    hubspot_times = property_times(engine, hubspot_obj, hubspot_ids, whole) if hubspot_ids else None
    for crm, objects in objects_by_crm.items():
        conn = getattr(settings.sync, crm)
        if hubspot is None or not getattr(settings.connections, crm).enabled \
                or not _object_sync(settings, crm, kind).enabled:
            continue
        linked = links[links[f"{crm}_id"].notna()]
        rules = {m.hubspot: m.rule for m in conn.field_mappings}
        merged = []
        for link_type, obj in objects.items():
            pairs = linked if link_type is None else linked[linked[f"{crm}_type"] == link_type]
            if pairs.empty:
                continue
            pairs = pd.DataFrame({"hubspot_id": pairs["hubspot_id"].astype(str).to_numpy(),
                                  "other_id": pairs[f"{crm}_id"].astype(str).to_numpy()})  # fmt: skip
            maps = DEFAULT_FIELDS.get((crm, obj), ())
            customs = [m for m in conn.field_mappings if m.object == obj]  # DEAL-1 custom mappings
            fields = [m.hubspot for m in maps] + [m.hubspot for m in customs] + [
                c for c in extra.get(crm, pd.DataFrame()).columns if c != "id"]
            kinds = {m.hubspot: m.kind for m in maps} | {m.hubspot: m.type for m in customs}
            other = with_extra(_values(engine, crm, obj, pairs["other_id"].tolist(), whole, cache, read_times), crm)
            base = baselines.load(engine, kind, crm, pairs["hubspot_id"].tolist())
            rows = merge_inputs(pairs, hubspot, other, fields, base, rules, kinds, hubspot_field_times=hubspot_times,
                                differing_only=writes_only)
            done = merge_fields(rows, merge_settings(settings, crm, kind))
            del rows
            if writes_only:
                done = done[(done["write_hubspot"] | done["write_other"]).to_numpy(dtype=bool)]
            merged.append(done.assign(other_object=obj))
        if merged:
            out[crm] = pd.concat(merged, ignore_index=True)
    return out


def contact_merges(engine: Engine, settings: Settings) -> dict[str, pd.DataFrame]:
    """``linked_merges`` of the contacts."""
    return linked_merges(engine, settings, "contact")


def create_settings(settings: Settings) -> dict[str, ContactCreateSettings]:
    """The settings' contact create rules per connection (enabled connections only)."""
    sf, dy = settings.sync.salesforce, settings.sync.dynamics
    out = {}
    if settings.connections.salesforce.enabled:
        out["salesforce"] = ContactCreateSettings(
            enabled=sf.contacts.enabled, direction=sf.contacts.direction, valid_email_only=sf.valid_email_only,
            new_type=sf.new_contact_type, inclusion=tuple(sf.inclusion_list) if sf.inclusion_list is not None else None,
            filters=tuple(sf.contacts.filters),
            create_from={"Lead": sf.create_contact_when_lead_created,
                         "Contact": sf.create_contact_when_contact_created},
        )  # fmt: skip
    if settings.connections.dynamics.enabled:
        out["dynamics"] = ContactCreateSettings(
            enabled=dy.contacts.enabled, direction=dy.contacts.direction, valid_email_only=dy.valid_email_only,
            new_type=dy.contact_entity, filters=tuple(dy.contacts.filters))  # fmt: skip
    return out


def contact_create_plan(engine: Engine, settings: Settings, identities: pd.DataFrame | None = None,
                        members: pd.DataFrame | None = None, whole: bool = True,
                        ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Contacts to create per target CRM, and those left out with why (``sync/contact_creates.py``).
    ``identities``/``members``: the contact tables' rows to plan (default: all); ``whole``: they are all."""
    rules = create_settings(settings)
    identities = unified.read(engine, "contact_identities") if identities is None else identities
    members = unified.read(engine, "contact_members", columns=CREATE_MEMBER_COLUMNS) if members is None else members
    filtered = {f.property for r in rules.values() for f in r.filters}
    hubspot = pd.DataFrame({"id": identities["hubspot_id"].dropna().to_numpy()})
    if filtered:  # CON-8 reads HubSpot properties the mapped fields may not hold
        ids = None if whole else hubspot["id"].astype(str).tolist()
        hubspot = mirror.read_records(engine, "hubspot", "contacts", ids=ids) if whole or ids else \
            pd.DataFrame({"id": pd.Series(dtype=object)})
    return contact_creates(identities, members, hubspot, rules, link_store.deletions(engine, "contact"))


def calls_left(engine: Engine, settings: Settings, crm: str) -> int | None:
    """The calls left in ``crm``'s 24 h budget now (OPS-2); None: no limit set."""
    limit = getattr(settings.connections, crm).api_call_limit
    return None if limit is None else limit - SqlCallLedger(engine).used(crm, time.time())


def budget_split(engine: Engine, settings: Settings, crm: str, work: pd.DataFrame,
                 ) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """A target's writes (``TargetPlan.work``), split into what fits the calls left in its 24 h budget and
    what is deferred (OPS-2, OPS-8); and the calls left (None: no limit set)."""
    left = calls_left(engine, settings, crm)
    kept, deferred = fit_budget(crm, work, left)
    return kept, deferred, left

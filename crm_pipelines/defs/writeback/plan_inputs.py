"""What the contact field plan reads from the state database: the contact links, the linked records' mapped
values (``unified`` field tables), their modification times (the mirror) and the baselines; merged per
connection with its settings (``sync/merge.py``)."""

from __future__ import annotations

import time

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.settings import Settings
from crm_pipelines.state import baselines, mirror, unified
from crm_pipelines.state import links as link_store
from crm_pipelines.state.api_usage import SqlCallLedger
from crm_pipelines.sync.calls import fit_budget
from crm_pipelines.sync.contact_creates import ContactCreateSettings, contact_creates
from crm_pipelines.sync.field_inputs import merge_inputs
from crm_pipelines.sync.merge import HUBSPOT, OTHER, MergeSettings, merge_fields
from crm_pipelines.transform.fields import DEFAULT_FIELDS

# the link's record type -> the object holding it, per CRM
CONTACT_OBJECTS = {"salesforce": {"Contact": "Contact", "Lead": "Lead"},
                   "dynamics": {"contact": "contacts", "lead": "leads"}}  # fmt: skip
_CHUNK = 1_000


def _values(engine: Engine, crm: str, obj: str, ids: list[str]) -> pd.DataFrame:
    """``id``, ``modified_at`` and one column per mapped HubSpot property of these records."""
    name = f"fields_{crm}_{obj.lower()}"
    table = mirror.table_for(crm, obj)
    parts, times = [], []
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            parts.append(unified.read(conn, name, unified.column(name, "id").in_(chunk)))
            times += conn.execute(sa.select(table.c.id, table.c.modified_at).where(table.c.id.in_(chunk))).all()
    stored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"id": [], "values": []})
    wide = pd.DataFrame([v or {} for v in stored["values"].tolist()])
    wide.insert(0, "id", stored["id"].astype(object).to_numpy())
    when = pd.DataFrame(times, columns=["id", "modified_at"]).astype({"id": object})
    when["modified_at"] = pd.to_datetime(when["modified_at"], utc=True)
    return wide.merge(when, on="id", how="left")


def merge_settings(settings: Settings, crm: str) -> MergeSettings:
    conn = getattr(settings.sync, crm)
    return MergeSettings(direction=conn.contacts.direction,
                         default_app=HUBSPOT if conn.default_app == "hubspot" else OTHER,
                         window_minutes=conn.conflict_window_minutes)  # fmt: skip


def contact_merges(engine: Engine, settings: Settings) -> dict[str, pd.DataFrame]:
    """Other CRM -> the merge of every linked contact's mapped fields with HubSpot (``merge_fields`` output,
    with ``hubspot_id``, ``other_id``, ``other_object``, ``field``)."""
    links = link_store.load(engine, kind="contact")
    out: dict[str, pd.DataFrame] = {}
    hubspot_ids = links["hubspot_id"].dropna().astype(str).tolist()
    hubspot = _values(engine, "hubspot", "contacts", hubspot_ids)
    for crm, objects in CONTACT_OBJECTS.items():
        conn = getattr(settings.sync, crm)
        if not conn.contacts.enabled:
            continue
        linked = links[links[f"{crm}_id"].notna()]
        rules = {m.hubspot: m.rule for m in conn.field_mappings}
        merged = []
        for link_type, obj in objects.items():
            pairs = linked[linked[f"{crm}_type"] == link_type]
            if pairs.empty:
                continue
            pairs = pd.DataFrame({"hubspot_id": pairs["hubspot_id"].astype(str).to_numpy(),
                                  "other_id": pairs[f"{crm}_id"].astype(str).to_numpy()})  # fmt: skip
            maps = DEFAULT_FIELDS.get((crm, obj), ())
            customs = [m for m in conn.field_mappings if m.object == obj]  # DEAL-1 custom mappings
            fields = [m.hubspot for m in maps] + [m.hubspot for m in customs]
            kinds = {m.hubspot: m.kind for m in maps} | {m.hubspot: m.type for m in customs}
            other = _values(engine, crm, obj, pairs["other_id"].tolist())
            base = baselines.load(engine, "contact", crm, pairs["hubspot_id"].tolist())
            rows = merge_inputs(pairs, hubspot, other, fields, base, rules, kinds)
            merged.append(merge_fields(rows, merge_settings(settings, crm)).assign(other_object=obj))
        if merged:
            out[crm] = pd.concat(merged, ignore_index=True)
    return out


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


def contact_create_plan(engine: Engine, settings: Settings) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Contacts to create per target CRM, and those left out with why (``sync/contact_creates.py``)."""
    rules = create_settings(settings)
    identities = unified.read(engine, "contact_identities")
    members = unified.read(engine, "contact_members")
    filtered = {f.property for r in rules.values() for f in r.filters}
    hubspot = pd.DataFrame({"id": identities["hubspot_id"].dropna().to_numpy()})
    if filtered:  # CON-8 reads HubSpot properties the mapped fields may not hold
        hubspot = mirror.read_records(engine, "hubspot", "contacts")
    return contact_creates(identities, members, hubspot, rules, link_store.deletions(engine, "contact"))


def budget_split(engine: Engine, settings: Settings, crm: str, updates: pd.DataFrame | None,
                 creates: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """A target's records to write (one row per record and action), split into what fits the calls left in
    its 24 h budget and what is deferred (OPS-2, OPS-8); and the calls left (None: no limit set)."""
    parts = []
    if updates is not None and len(updates):
        parts.append(pd.DataFrame({"action": "update", "object": updates["kind"].to_numpy(),
                                   "record_id": updates["record_id"].astype(str).to_numpy()}).drop_duplicates())
    if creates is not None and len(creates):
        parts.append(pd.DataFrame({"action": "create", "object": "contact",
                                   "record_id": creates["source_id"].astype(str).to_numpy()}))
    work = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["action", "object", "record_id"])
    limit = getattr(settings.connections, crm).api_call_limit
    left = None if limit is None else limit - SqlCallLedger(engine).used(crm, time.time())
    kept, deferred = fit_budget(crm, work, left)
    return kept, deferred, left

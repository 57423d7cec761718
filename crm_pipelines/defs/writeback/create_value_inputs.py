"""What the creates' field values are read from (``sync/create_values.py``): the source records' ``unified``
field tables, and the connection's field mappings and rules for the pair of objects."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines.defs.writeback.field_tables import read_fields, whole_fields
from crm_pipelines.defs.writeback.task_inputs import task_plan_of
from crm_pipelines.settings import Settings
from crm_pipelines.state import links as link_store
from crm_pipelines.sync.create_values import create_values, empty, pair_fields
from crm_pipelines.sync.value_forms import FORMATTED, LENGTHS, may_be_too_long, update_forms, value_forms
from crm_pipelines.transform.fields import DEFAULT_FIELDS

HUBSPOT_OBJECT = {"contact": "contacts", "company": "companies", "deal": "deals"}
# the other CRM's objects per HubSpot object, and a create's ``object_type`` -> the mirror's object
OTHER_OBJECTS = {
    "salesforce": {"contact": ("Lead", "Contact"), "company": ("Account",), "deal": ("Opportunity",)},
    "dynamics": {"contact": ("contacts", "leads"), "company": ("accounts",), "deal": ("opportunities",)},
}
DYNAMICS_ENTITY_SET = {"contact": "contacts", "lead": "leads", "account": "accounts", "opportunity": "opportunities"}


def _fields(settings: Settings, crm: str, obj: str):
    conn = getattr(settings.sync, crm)
    rules = {m.hubspot: m.rule for m in conn.field_mappings}
    return pair_fields(DEFAULT_FIELDS.get((crm, obj), ()), [m for m in conn.field_mappings if m.object == obj], rules)


def _cached(engine: Engine, crm: str, obj: str, ids: list[str], cache: dict, whole: bool) -> pd.DataFrame:
    """``read_fields``, each record read once per plan: a HubSpot record created in both other CRMs is read once;
    ``whole``: the table read whole at once (a full plan's creates are most of its records: faster than their
    ids in lists)."""
    if whole:  # nothing to look for beyond the table (a set of its ids took a second at a million people)
        have = whole_fields(engine, crm, obj, cache)
        return have[have["id"].isin(set(ids))]
    have = cache.get((crm, obj))
    known = set() if have is None else set(have["id"])
    missing = [i for i in dict.fromkeys(ids) if i not in known]
    if missing:
        more = read_fields(engine, crm, obj, missing)
        have = pd.concat([p for p in (have, more) if p is not None], ignore_index=True)
        cache[(crm, obj)] = have
    return have[have["id"].isin(set(ids))] if have is not None else read_fields(engine, crm, obj, [])


def create_values_of(engine: Engine, settings: Settings, target: str, creates: pd.DataFrame,
                     extra: pd.DataFrame | None = None, cache: dict | None = None, whole: bool = False,
                     limited_only: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The field values each of ``target``'s planned creates (``plan.CREATE_COLUMNS``) carries, in the form
    its API takes (``api_value``, OPS-9), and the findings of text too long for its field. ``extra``: values of
    creates planned elsewhere (tasks), formed alike; ``cache``: records read for an earlier target; ``whole``: the
    creates are most records (a full plan): their tables are read whole; ``limited_only``: only the values of
    fields with a length (``value_forms.LENGTHS``), all the findings need (HubSpot's properties have none)."""
    cache = {} if cache is None else cache
    if limited_only and target == "hubspot":
        return value_forms(empty(), target)

    def fields(crm: str, obj: str) -> list:
        mapped = _fields(settings, crm, obj)
        return [f for f in mapped if (target, obj, f.other) in LENGTHS] if limited_only else mapped

    parts = []
    records = creates[creates["object"].isin(list(HUBSPOT_OBJECT))]
    for (obj, source), made in records.groupby(["object", "source_crm"], sort=True):
        ids = made["source_id"].astype(str).tolist()
        if target == "hubspot":  # from Salesforce or Dynamics: whichever of its objects holds the record
            for other_obj in OTHER_OBJECTS[source][obj]:
                values = _cached(engine, source, other_obj, ids, cache, whole)
                if len(values):
                    parts.append(create_values(made, values, _fields(settings, source, other_obj), to_hubspot=True,
                                               target_object=HUBSPOT_OBJECT[obj]))  # fmt: skip
            continue
        values = _cached(engine, "hubspot", HUBSPOT_OBJECT[obj], ids, cache, whole)
        for object_type, one_type in made.groupby("object_type", sort=True):
            other_obj = str(object_type)
            other_obj = DYNAMICS_ENTITY_SET.get(other_obj, other_obj) if target == "dynamics" else other_obj
            mapped = fields(target, other_obj)
            # only the findings kept: only text longer than its limit as read can be one
            source = may_be_too_long(values, {f.hubspot: (f.kind, LENGTHS[(target, other_obj, f.other)])
                                              for f in mapped}) if limited_only else values
            parts.append(create_values(one_type, source, mapped, to_hubspot=False, target_object=other_obj))
    if limited_only and extra is not None:
        keys = zip(extra["target_object"].astype(str), extra["target_field"].astype(str), strict=True)
        extra = extra[[(target, o, f) in LENGTHS for o, f in keys]]
    parts = [p for p in [*parts, extra] if p is not None and len(p)]
    return value_forms(pd.concat(parts, ignore_index=True) if parts else empty(), target)


def may_be_too_long_anywhere(settings: Settings, obj: str, values: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of HubSpot's ``obj`` field table (``values``, read whole) whose text may be too long for a field
    of any object a create of them becomes in Salesforce or Dynamics (``may_be_too_long`` per object): all that
    ``create_values_of`` with ``limited_only`` reads of them. None when that is every row (a field whose value
    is formatted first)."""
    kind = {hubspot: kind for kind, hubspot in HUBSPOT_OBJECT.items()}[obj]
    # a property over the least of its limits is over one of them: one pass over the table
    limits: dict[str, tuple[str, int]] = {}
    for target, objects in OTHER_OBJECTS.items():
        for other_obj in objects[kind]:
            for f in _fields(settings, target, other_obj):
                limit = LENGTHS.get((target, other_obj, f.other))
                if limit is None:
                    continue
                if f.kind in FORMATTED:
                    return None
                if f.hubspot not in limits or limit < limits[f.hubspot][1]:
                    limits[f.hubspot] = (f.kind, limit)
    return may_be_too_long(values, limits).reset_index(drop=True)


def carried_values(engine: Engine, settings: Settings, target: str, creates: pd.DataFrame) -> pd.DataFrame:
    """``create_values_of`` these creates (tasks included): the stored plan keeps a create, not its values
    (a row per create and field would be most of a first sync's plan), so they are read when shown or written,
    as its source record holds them then."""
    extra = None
    tasks = creates["object"].eq("task").to_numpy()
    if target == "salesforce" and tasks.any():
        extra = task_plan_of(engine, settings, set(creates.loc[tasks, "source_id"].astype(str))).values
    return create_values_of(engine, settings, target, creates, extra)[0]


def _field_names(settings: Settings, target: str) -> pd.DataFrame:
    """``target_object``, ``field`` (HubSpot property), ``target_field``, ``kind`` of every mapped field."""
    rows = []
    for crm, per in OTHER_OBJECTS.items():
        for obj, objects in per.items():
            for other_obj in objects:
                for f in _fields(settings, crm, other_obj):
                    if target == "hubspot":
                        rows.append((HUBSPOT_OBJECT[obj], f.hubspot, f.hubspot, f.kind))
                    elif target == crm:
                        rows.append((other_obj, f.hubspot, f.other, f.kind))
    if target == "hubspot":
        rows += [(obj, m.hubspot, m.hubspot, m.kind) for obj in HUBSPOT_OBJECT.values()
                 for m in DEFAULT_FIELDS.get(("hubspot", obj), ())]  # fmt: skip
    return pd.DataFrame(rows, columns=["target_object", "field", "target_field", "kind"])


def update_forms_of(engine: Engine, settings: Settings, target: str, updates: pd.DataFrame,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``target``'s field updates with the API's field name and the new value in the API's form (OPS-9), and the
    findings of text too long for its field."""
    if updates.empty:
        return updates.assign(target_field=None, api_value=None), value_forms(empty(), target)[1]
    return update_forms(updates, target, update_objects(engine, target, updates), _field_names(settings, target))


def update_objects(engine: Engine, target: str, updates: pd.DataFrame) -> pd.Series:
    """The ``target`` API object each update (``kind``, ``hubspot_id``) writes to, aligned with ``updates``: a
    contact is a Lead or a Contact (Dynamics: contact or lead), as its link says."""
    kind = updates["kind"].astype(str)
    if target == "hubspot":
        return kind.map(HUBSPOT_OBJECT)
    obj = kind.map({k: v[0] for k, v in OTHER_OBJECTS[target].items()}).astype(object)
    contacts = kind.eq("contact").to_numpy()
    if contacts.any():
        links = link_store.load(engine, kind="contact", hubspot_ids=updates.loc[contacts, "hubspot_id"].astype(str))
        types = links.drop_duplicates("hubspot_id").set_index("hubspot_id")[f"{target}_type"].astype(str)
        found = updates.loc[contacts, "hubspot_id"].astype(str).map(types)
        if target == "dynamics":
            found = found.map(DYNAMICS_ENTITY_SET)
        obj.loc[contacts] = found.fillna(OTHER_OBJECTS[target]["contact"][0]).to_numpy()
    return obj

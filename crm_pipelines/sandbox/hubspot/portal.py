"""The HubSpot portal's behaviour: property rules, record writes with history, and rendering.

Handlers in ``api.py`` translate HTTP to calls here; the admin "UI" routes use the same calls with the
``CRM_UI`` source, so an edit made "by a person" bumps timestamps exactly like an API write does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.catalog import (
    ARCHIVE_RETENTION_DAYS,
    ASSOCIATION_TYPES,
    OBJECT_TYPES,
    ObjectType,
    PropertyDef,
    base_properties,
    inverse_type_id,
    v3_association_type_name,
)
from crm_pipelines.sandbox.hubspot.rollups import (
    DEAL_INPUTS,
    SOURCE_CALCULATED,
    changed,
    deal_facts,
    figures,
    won_stages,
)
from crm_pipelines.sandbox.hubspot.store import HubSpotStore, Record, email_key
from crm_pipelines.sandbox.hubspot.values import InvalidValue, iso_ms, normalize, parse_timestamp_ms

V3_ASSOCIATIONS_MAX = 100  # associations per type inline in a v3 record, past which they are paged

SOURCE_API = "INTEGRATION"
SOURCE_UI = "CRM_UI"
SOURCE_IMPORT = "IMPORT"


def now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


def _custom(d: Mapping[str, Any]) -> PropertyDef:
    """A custom property's definition from its create body as stored."""
    return PropertyDef(
        d["name"],
        d["label"],
        d["type"],
        d["fieldType"],
        d["groupName"],
        options=tuple((o["value"], o["label"]) for o in d.get("options", [])),
        unique=bool(d.get("hasUniqueValue")),
        hubspot_defined=False,
        description=d.get("description", ""),
    )


class Portal:
    def __init__(self, store: HubSpotStore) -> None:
        self.store = store
        self._base = base_properties()

    # -- definitions --------------------------------------------------------------------------------
    def properties(self, object_type: str) -> dict[str, PropertyDef]:
        """Every live property; an archived one is gone for reads, writes and search alike."""
        props = dict(self._base[object_type])
        for d in self.store.custom_properties(object_type):
            props[d["name"]] = _custom(d)
        return props

    def archived_properties(self, object_type: str) -> dict[str, tuple[PropertyDef, str]]:
        """The custom properties in the recycle bin: name -> (definition, archivedAt)."""
        return {d["name"]: (_custom(d), d["archivedAt"]) for d in self.store.custom_properties(object_type,
                                                                                              archived=True)}

    def archive_property(self, object_type: str, name: str) -> None:
        """DELETE /crm/v3/properties/{type}/{name}: a custom property moves to the recycle bin; records keep its
        values in storage, but they no longer show or take writes."""
        found = next((d for d in self.store.custom_properties(object_type) if d["name"] == name), None)
        if found is None:
            if name in self._base[object_type]:
                # unverified wording; HubSpot's own properties cannot be archived
                raise errors.validation(f"Property {name} is a HubSpot-defined property and cannot be archived")
            raise errors.HubSpotError(404, "OBJECT_NOT_FOUND", f"property {name} does not exist")
        self.store.put_custom_property(object_type, name, {**found, "archived": True, "archivedAt": iso_ms(now_ms())})

    def dynamic_options(self, prop: PropertyDef) -> set[str] | None:
        if prop.extra.get("owner"):
            return {str(row[0]) for row in self.store.owners()}
        if prop.extra.get("pipeline"):
            return {p["id"] for p in self.store.pipelines("deals")}
        if prop.extra.get("stage"):
            return {s["id"] for p in self.store.pipelines("deals") for s in p["stages"]}
        return None

    def option_list(self, prop: PropertyDef) -> list[tuple[str, str]]:
        if prop.extra.get("owner"):
            return [(str(r[0]), f"{r[2] or ''} {r[3] or ''}".strip()) for r in self.store.owners()]
        if prop.extra.get("pipeline"):
            return [(p["id"], p["label"]) for p in self.store.pipelines("deals")]
        if prop.extra.get("stage"):
            return [(s["id"], s["label"]) for p in self.store.pipelines("deals") for s in p["stages"]]
        return list(prop.options)

    # -- validation ---------------------------------------------------------------------------------
    def clean(self, o: ObjectType, values: Mapping[str, Any], *, creating: bool) -> dict[str, str | None]:
        """Validated, normalized property values; every problem reported at once, none applied."""
        if not isinstance(values, Mapping):
            raise errors.validation("Invalid input JSON: properties must be an object")
        defs = self.properties(o.name)
        problems: list[tuple[str, str, str]] = []
        cleaned: dict[str, str | None] = {}
        for name, value in values.items():
            prop = defs.get(name)
            if prop is None:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only and not (creating and name == o.created_prop):
                problems.append(
                    # HubSpot's own wording for every read-only value (docs/hubspot_rollups.md)
                    (name, "READ_ONLY_VALUE", f'"{name}" is a calculated property; its value cannot be set.')
                )
                continue
            try:
                cleaned[name] = normalize(prop, value, self.dynamic_options(prop))
            except InvalidValue as bad:
                problems.append((name, bad.code, bad.message))
        if creating:
            for name in o.required_on_create:
                if cleaned.get(name) is None and not any(p[0] == name for p in problems):
                    problems.append((name, "REQUIRED_PROPERTY", f'Property "{name}" is required.'))
        if o.name == "deals" and cleaned.get("dealstage"):
            problems += self._stage_problems(cleaned)
        if problems:
            raise errors.property_errors(problems)
        return cleaned

    def _stage_problems(self, cleaned: dict[str, str | None]) -> list[tuple[str, str, str]]:
        pipeline_id = cleaned.get("pipeline") or "default"
        for p in self.store.pipelines("deals"):
            if p["id"] == pipeline_id:
                if cleaned["dealstage"] in {s["id"] for s in p["stages"]}:
                    return []
                return [
                    (
                        "dealstage",
                        "INVALID_OPTION",
                        f"{cleaned['dealstage']} is not a valid deal stage of pipeline {pipeline_id}",
                    )
                ]
        return []

    def _check_email_free(self, o: ObjectType, props: Mapping[str, str | None], own_id: int | None) -> None:
        if o.name != "contacts" or not props.get("email"):
            return
        existing = self.store.find_by_email(props["email"])  # type: ignore[arg-type]
        if existing and existing.id != own_id:
            raise errors.conflict_existing_contact(existing.id)

    # -- writes -------------------------------------------------------------------------------------
    def create(
        self,
        o: ObjectType,
        values: Mapping[str, Any],
        *,
        source: str = SOURCE_API,
        associations: Iterable[Mapping[str, Any]] = (),
    ) -> Record:
        props = self.clean(o, values, creating=True)
        self._check_email_free(o, props, None)
        if o.name == "deals" and props.get("dealstage") and not props.get("pipeline"):
            props["pipeline"] = "default"
        links = [self._parse_create_association(o, a) for a in associations]
        stamp = now_ms()
        created = stamp
        if props.get(o.created_prop):
            created = parse_timestamp_ms(props.pop(o.created_prop)) or stamp
        stored = {k: v for k, v in props.items() if v is not None}
        record_id = self.store.allocate_ids(o.name, o.id_base, 1)[0]
        with self.store.transaction():
            self.store.insert_records(
                o.name, [(record_id, orjson.dumps(stored).decode(), created, stamp, email_key(stored.get("email")))]
            )
            self.store.add_history((o.name, record_id, k, v, stamp, source) for k, v in stored.items())
            for to_type, to_id, type_ids in links:
                self.associate(o.name, record_id, to_type, to_id, type_ids)
        if o.name == "contacts" and any(to_type == "deals" for to_type, _, _ in links):
            return self.store.get(o.name, record_id) or Record(o.name, record_id, stored, created, stamp, False, None)
        return Record(o.name, record_id, stored, created, stamp, False, None)

    def update(self, o: ObjectType, record: Record, values: Mapping[str, Any], *, source: str = SOURCE_API) -> Record:
        props = self.clean(o, values, creating=False)
        self._check_email_free(o, props, record.id)
        changed = {k: v for k, v in props.items() if record.properties.get(k) != v}
        if not changed:
            return record
        merged = {**record.properties, **changed}
        merged = {k: v for k, v in merged.items() if v is not None}
        clock.check_after(clock.from_ms(record.updated_ms))
        # Timestamps only move forward, even for two writes inside one millisecond.
        stamp = max(now_ms(), record.updated_ms + 1)
        updated = replace(record, properties=merged, updated_ms=stamp)
        with self.store.transaction():
            self._seed_history(record, changed)
            self.store.save(updated)
            self.store.add_history((o.name, record.id, k, v, stamp, source) for k, v in changed.items())
            if o.name == "deals" and DEAL_INPUTS & changed.keys():
                self.recompute_rollups(self.store.associations_of("deals", record.id, "contacts"))
        return updated

    def _seed_history(self, record: Record, changed: Mapping[str, Any]) -> None:
        """Imported values have no history rows (a read makes their entry from the record's last change): before
        the record changes, each gets its entry as it stands, so that a property the change leaves alone keeps
        its time (HubSpot's history holds an imported value from its import, whatever changes later)."""
        names = list(record.properties)
        known = self.store.history(record.object_type, record.id, names)
        self.store.add_history(
            (record.object_type, record.id, k, record.properties[k], record.updated_ms, SOURCE_IMPORT)
            for k in names
            if k not in known
        )

    def archive(self, record: Record) -> None:
        stamp = max(now_ms(), record.updated_ms + 1)
        with self.store.transaction():
            self.store.save(replace(record, archived=True, archived_ms=stamp, updated_ms=stamp))
            if record.object_type == "deals":  # only live deals count
                self.recompute_rollups(self.store.associations_of("deals", record.id, "contacts"))

    # -- HubSpot's calculated rollups (ROLL-1) ------------------------------------------------------
    def recompute_rollups(self, contact_ids) -> None:
        """Recompute the deal rollups of these contacts (``rollups.py``) and store those that changed, as
        HubSpot does after a deal or an association changes: the contact's modification time moves and the
        property history says the calculation set the value."""
        ids = sorted({int(i) for i in contact_ids})
        if not ids:
            return
        contacts = self.store.get_many("contacts", ids)
        if not contacts:
            return
        won = won_stages(self.store.pipelines("deals"))
        deals = self.store.contact_deals(list(contacts))
        for contact_id, record in contacts.items():
            linked = deals.get(contact_id, [])
            facts = [deal_facts(d, created, orjson.loads(props), won) for d, created, props in linked]
            new = changed(record.properties, figures(facts))
            if new:
                self._store_calculated(record, new)

    def _store_calculated(self, record: Record, values: Mapping[str, str | None]) -> None:
        merged = {k: v for k, v in {**record.properties, **values}.items() if v is not None}
        stamp = max(now_ms(), record.updated_ms + 1)
        with self.store.transaction():
            self._seed_history(record, values)
            self.store.save(replace(record, properties=merged, updated_ms=stamp))
            self.store.add_history(
                (record.object_type, record.id, k, v, stamp, SOURCE_CALCULATED) for k, v in values.items()
            )

    def find(self, o: ObjectType, key: str, id_property: str | None, *, archived: bool = False) -> Record | None:
        if id_property and id_property != "hs_object_id":
            if o.name == "contacts" and id_property == "email":
                return None if archived else self.store.find_by_email(key)
            prop = self.properties(o.name).get(id_property)
            if prop is None or not prop.unique:
                raise errors.validation(f"{id_property} is not a unique property of {o.name}")
            return None if archived else self.store.find_by_property(o.name, id_property, key)
        if not key.isdigit():
            return None
        return self.store.get(o.name, int(key), archived=archived)

    # -- associations -------------------------------------------------------------------------------
    def associate(
        self, from_type: str, from_id: int, to_type: str, to_id: int, type_ids: list[tuple[str, int]]
    ) -> None:
        """Store both directions; a primary label also carries the unlabeled type (FACTS §10)."""
        pair = ASSOCIATION_TYPES.get((from_type, to_type))
        rows = []
        for category, type_id in type_ids:
            wanted = [type_id]
            if pair and category == "HUBSPOT_DEFINED" and pair[1] == type_id:
                wanted.append(pair[0])
            for t in wanted:
                rows.append((from_type, from_id, to_type, to_id, t, category))
                back = inverse_type_id(from_type, to_type, t) if category == "HUBSPOT_DEFINED" else t
                if back is not None:
                    rows.append((to_type, to_id, from_type, from_id, back, category))
        self.store.add_associations(rows)
        self._rollups_after_link(from_type, from_id, to_type, to_id)

    def _rollups_after_link(self, from_type: str, from_id: int, to_type: str, to_id: int) -> None:
        """A contact gaining or losing a deal has its rollups recomputed."""
        if (from_type, to_type) == ("contacts", "deals"):
            self.recompute_rollups([from_id])
        elif (from_type, to_type) == ("deals", "contacts"):
            self.recompute_rollups([to_id])

    def dissociate(
        self, from_type: str, from_id: int, to_type: str, to_id: int, type_ids: list[int] | None = None
    ) -> None:
        self.store.remove_associations(from_type, from_id, to_type, to_id, type_ids)
        back = (
            None
            if type_ids is None
            else [b for t in type_ids if (b := inverse_type_id(from_type, to_type, t)) is not None]
        )
        self.store.remove_associations(to_type, to_id, from_type, from_id, back)
        self._rollups_after_link(from_type, from_id, to_type, to_id)

    def default_type_id(self, from_type: str, to_type: str) -> int:
        pair = ASSOCIATION_TYPES.get((from_type, to_type))
        if pair is None:
            raise errors.validation(f"No default association type between {from_type} and {to_type}")
        return pair[0]

    def _parse_create_association(self, o: ObjectType, spec: Mapping[str, Any]) -> tuple[str, int, list]:
        try:
            to_id = int(spec["to"]["id"])
            types = [(t["associationCategory"], int(t["associationTypeId"])) for t in spec["types"]]
        except (KeyError, TypeError, ValueError):
            raise errors.validation("Invalid association input: expected to.id and types[]") from None
        for to_type in OBJECT_TYPES:
            pair = ASSOCIATION_TYPES.get((o.name, to_type))
            if pair and any(t in pair for _, t in types) and self.store.get(to_type, to_id):
                return to_type, to_id, types
        raise errors.validation(f"Association target {to_id} not found for the given association types")

    # -- rendering ----------------------------------------------------------------------------------
    def render(
        self,
        record: Record,
        names: list[str] | None = None,
        *,
        history: list[str] | None = None,
        associations: list[str] | None = None,
        defs: Mapping[str, PropertyDef] | None = None,
        linked: Mapping[str, Mapping[int, dict[int, list[tuple[int, str]]]]] | None = None,
    ) -> dict[str, Any]:
        """``linked``: a page's associations read at once (``linked_for_page``), else each record's are read."""
        o = OBJECT_TYPES[record.object_type]
        defs = defs if defs is not None else self.properties(o.name)
        wanted = names if names is not None else list(o.default_properties)
        values = self._values(record, o)
        props = {n: values.get(n) for n in wanted if n in defs}
        out: dict[str, Any] = {
            "id": str(record.id),
            "properties": props,
            "createdAt": iso_ms(record.created_ms),
            "updatedAt": iso_ms(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms is not None:
            out["archivedAt"] = iso_ms(record.archived_ms)
        if history:
            out["propertiesWithHistory"] = self._history(record, [n for n in history if n in defs], values)
        if associations:
            out["associations"] = self._v3_associations(record, associations, linked)
        return out

    @staticmethod
    def _values(record: Record, o: ObjectType) -> dict[str, str | None]:
        return {
            **record.properties,
            "hs_object_id": str(record.id),
            o.created_prop: iso_ms(record.created_ms),
            o.modified_prop: iso_ms(record.updated_ms),
        }

    def _history(self, record: Record, names: list[str], values: Mapping[str, Any]) -> dict[str, list[dict]]:
        stored = self.store.history(record.object_type, record.id, names) if names else {}
        out: dict[str, list[dict]] = {}
        for name in names:
            entries = stored.get(name)
            if entries:
                out[name] = [{"value": v or "", "timestamp": iso_ms(ts), "sourceType": src} for v, ts, src in entries]
            elif values.get(name) is not None:
                out[name] = [
                    {"value": values[name], "timestamp": iso_ms(record.updated_ms), "sourceType": SOURCE_IMPORT}
                ]
            else:
                out[name] = []
        return out

    @staticmethod
    def _to_types(segments: list[str]) -> list[ObjectType]:
        """The object types ``associations=`` names (plural, singular or type id); unknown names are ignored."""
        def named(segment: str) -> ObjectType | None:
            return next((t for t in OBJECT_TYPES.values() if segment in (t.name, t.singular, t.type_id)), None)

        return [t for segment in segments if (t := named(segment)) is not None]

    def linked_for_page(
        self, object_type: str, ids: list[int], segments: list[str]
    ) -> dict[str, dict[int, dict[int, list[tuple[int, str]]]]]:
        """A list page's associations, one query per type (a query per record held the event loop a page longer)."""
        return {to.name: self.store.associations_of_many(object_type, ids, to.name) for to in self._to_types(segments)}

    def _v3_associations(
        self, record: Record, to_types: list[str],
        page: Mapping[str, Mapping[int, dict[int, list[tuple[int, str]]]]] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for to in self._to_types(to_types):
            if page is not None:
                linked = page.get(to.name, {}).get(record.id, {})
            else:
                linked = self.store.associations_of(record.object_type, record.id, to.name)
            results = [
                {"id": str(to_id), "type": v3_association_type_name(record.object_type, to.name, type_id, category)}
                for to_id, types in linked.items()
                for type_id, category in types
            ]
            if len(results) > V3_ASSOCIATIONS_MAX:
                # paged past 100 since 2021-01-18 (developers.hubspot.com/changelog/announcing-a-change-to-how-v3-
                # crm-apis-return-association-data); the rest is for a per-record read
                after = results[V3_ASSOCIATIONS_MAX - 1]["id"]
                path = f"/crm/v3/objects/{record.object_type}/{record.id}/associations/{to.name}"
                out[to.name] = {
                    "results": results[:V3_ASSOCIATIONS_MAX],
                    "paging": {"next": {"after": after, "link": f"{path}?after={after}"}},
                }
            elif results:
                out[to.name] = {"results": results}
        return out

    def retention_cutoff_ms(self) -> int:
        return now_ms() - ARCHIVE_RETENTION_DAYS * 86_400_000

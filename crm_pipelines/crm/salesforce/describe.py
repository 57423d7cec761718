"""What a describe call tells the sync: field types and lengths, picklists, record types (FACTS §11, §13)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# With state and country picklists on, address fields gain ``…CountryCode`` / ``…StateCode`` companions.
PICKLIST_MARKERS = ("CountryCode", "BillingCountryCode", "MailingCountryCode", "ShippingCountryCode")


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str  # describe's type: string, email, picklist, reference, boolean, int, double, date, datetime, …
    length: int = 0  # text length limit (0 = none given)
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    picklist: tuple[str, ...] = ()  # active values
    restricted: bool = False
    external_id: bool = False  # marked External ID: upserts and look-ups by it


@dataclass(frozen=True)
class RecordTypeInfo:
    id: str
    name: str
    developer_name: str
    master: bool
    active: bool
    default: bool


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    key_prefix: str | None
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    record_types: list[RecordTypeInfo] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def picklists(self) -> dict[str, tuple[str, ...]]:
        return {n: f.picklist for n, f in self.fields.items() if f.type in ("picklist", "multipicklist")}

    @property
    def state_country_picklists(self) -> bool:
        """Whether the org has state and country picklists on (the object has code companions)."""
        return any(marker in self.fields for marker in PICKLIST_MARKERS)

    def field(self, name: str) -> FieldInfo | None:
        """Field names are case-insensitive in Salesforce."""
        found = self.fields.get(name)
        if found is not None:
            return found
        lower = name.lower()
        return next((f for n, f in self.fields.items() if n.lower() == lower), None)


def object_info(body: dict[str, Any]) -> ObjectInfo:
    fields = {
        f["name"]: FieldInfo(
            name=f["name"],
            type=f.get("type", "string"),
            length=int(f.get("length") or 0),
            nillable=bool(f.get("nillable", True)),
            createable=bool(f.get("createable", True)),
            updateable=bool(f.get("updateable", True)),
            picklist=tuple(p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)),
            restricted=bool(f.get("restrictedPicklist", False)),
            external_id=bool(f.get("externalId", False)),
        )
        for f in body.get("fields", [])
    }
    record_types = [
        RecordTypeInfo(
            id=r["recordTypeId"],
            name=r.get("name", ""),
            developer_name=r.get("developerName", ""),
            master=bool(r.get("master")),
            active=bool(r.get("active", True)),
            default=bool(r.get("defaultRecordTypeMapping")),
        )
        for r in body.get("recordTypeInfos") or []
    ]
    return ObjectInfo(body["name"], body.get("keyPrefix"), fields, record_types, body)

"""The shapes the catalogue is made of: an object type and a property definition."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObjectType:
    name: str  # plural path segment, e.g. "contacts"
    singular: str  # "contact", as in v3 association type names
    type_id: str  # "0-1"
    created_prop: str
    modified_prop: str
    id_base: int  # ids of different objects never collide, which catches clients mixing types up
    default_properties: tuple[str, ...]  # §2
    query_fields: tuple[str, ...]  # §2, free-text `query` searches these
    required_on_create: tuple[str, ...] = ()


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str  # text | textarea | number | date | select | radio | booleancheckbox | calculation_equation
    group_name: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    read_only: bool = False
    unique: bool = False
    calculated: bool = False
    hubspot_defined: bool = True
    description: str = ""
    extra: dict = field(default_factory=dict)

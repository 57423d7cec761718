"""Compound address fields (``MailingAddress``, ``BillingAddress``, Lead ``Address``…) as REST renders them.

A compound field has no storage of its own: its value is a structure read from its components, ``null`` when
every component is empty (FACTS §16). ``countryCode``/``stateCode`` appear only while the org has state and
country picklists on, as for the component fields themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_pipelines.sandbox.salesforce.catalog import ADDRESS_PARTS, Field

PICKLIST_PARTS = {"countryCode", "stateCode"}


def component_names(f: Field, picklists: bool) -> list[tuple[str, str]]:
    """(key in the compound value, component field name) for the compound field ``f``."""
    assert f.address_prefix is not None
    return [(key, f"{f.address_prefix}{suffix}") for key, suffix in ADDRESS_PARTS
            if picklists or key not in PICKLIST_PARTS]


def address_value(f: Field, component: Callable[[str], Any], picklists: bool) -> dict[str, Any] | None:
    value = {key: component(name) for key, name in component_names(f, picklists)}
    return value if any(v is not None for v in value.values()) else None

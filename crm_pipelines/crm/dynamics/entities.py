"""The standard tables the sync reads and writes, by entity set (FACTS §C, §I): each table's primary key, and
its logical name, which the metadata (``EntityDefinitions``) is keyed by."""

from __future__ import annotations

TABLES = {
    "contacts": ("contactid", "contact"),
    "leads": ("leadid", "lead"),
    "accounts": ("accountid", "account"),
    "opportunities": ("opportunityid", "opportunity"),
    "systemusers": ("systemuserid", "systemuser"),
}


def _table(entity_set: str, what: str) -> tuple[str, str]:
    try:
        return TABLES[entity_set]
    except KeyError:
        raise KeyError(f"unknown {what} for entity set {entity_set!r}") from None


def primary_key(entity_set: str) -> str:
    return _table(entity_set, "primary key")[0]


def logical_name(entity_set: str) -> str:
    return _table(entity_set, "logical name")[1]

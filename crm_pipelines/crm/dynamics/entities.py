"""The standard tables the sync reads and writes, by entity set (FACTS §C, §I)."""

from __future__ import annotations

PRIMARY_KEYS = {
    "contacts": "contactid",
    "leads": "leadid",
    "accounts": "accountid",
    "opportunities": "opportunityid",
    "systemusers": "systemuserid",
}


def primary_key(entity_set: str) -> str:
    try:
        return PRIMARY_KEYS[entity_set]
    except KeyError:
        raise KeyError(f"unknown primary key for entity set {entity_set!r}") from None


# The tables' logical names, which the metadata (``EntityDefinitions``) is keyed by.
LOGICAL_NAMES = {
    "contacts": "contact",
    "leads": "lead",
    "accounts": "account",
    "opportunities": "opportunity",
    "systemusers": "systemuser",
}


def logical_name(entity_set: str) -> str:
    try:
        return LOGICAL_NAMES[entity_set]
    except KeyError:
        raise KeyError(f"unknown logical name for entity set {entity_set!r}") from None

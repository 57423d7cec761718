"""A record's associations from the ``associations`` block the v3 list endpoint returns inline (issue 17), in the
shape of the v4 batch read (``toObjectId``, ``associationTypes``), or None where the block is not complete.

The list endpoint (``GET /crm/v3/objects/{type}?associations=companies``) names each association's type by a
string, not a type id: ``contact_to_company`` for the primary (or, for a pair without one, its only
HubSpot-defined type), ``contact_to_company_unlabeled`` for the default, and a user-defined label by the label's
name ("facilitator"), which no table here can turn into its type id. It lists at most 100 associations a type
and pages the rest. So a block is taken only when it holds nothing but HubSpot's own types and no next page;
otherwise the record's associations are read by the v4 batch read, as those of records search brings are.

Sources: the v3 association pagination (developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-
return-association-data: more than 100 associations come with ``paging.next.after``) and a v3 list response
quoted on the HubSpot community (community.hubspot.com, "Object data fetch - sorting out associations":
``deal_to_company``, ``deal_to_company_unlabeled`` and a label ``facilitator`` on one deal). Type ids: HubSpot's
Node SDK enum ``AssociationTypes`` (FACTS §10).
"""

from __future__ import annotations

from typing import Any

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"

# (from, to) -> v3 type name -> (type id, v4 label), for the pairs the extract reads (extract/hubspot.py)
V3_TYPES: dict[tuple[str, str], dict[str, tuple[int, str | None]]] = {
    ("contacts", "companies"): {"contact_to_company": (1, "Primary"), "contact_to_company_unlabeled": (279, None)},
    ("deals", "companies"): {"deal_to_company": (5, "Primary"), "deal_to_company_unlabeled": (341, None)},
    ("deals", "contacts"): {"deal_to_contact": (3, None)},
    ("tasks", "contacts"): {"task_to_contact": (204, None)},
    ("tasks", "deals"): {"task_to_deal": (216, None)},
}


def inline_targets(listed: dict[str, Any], from_type: str, to_type: str) -> list[dict[str, Any]] | None:
    """A record's associations to ``to_type`` from ``listed`` (its inline ``associations``), as
    ``HubSpotClient.associations`` gives them; None when the block pages on or holds a type not in ``V3_TYPES``
    (module doc). No block for ``to_type`` means none (HubSpot leaves empty blocks out)."""
    names = V3_TYPES.get((from_type, to_type))
    if names is None:
        return None
    block = listed.get(to_type) or {}
    if (block.get("paging") or {}).get("next"):
        return None
    by_target: dict[str, list[dict[str, Any]]] = {}
    for entry in block.get("results") or ():
        known = names.get(str(entry.get("type")))
        if known is None:
            return None
        type_id, label = known
        kinds = by_target.setdefault(str(entry["id"]), [])
        kind = {"category": HUBSPOT_DEFINED, "typeId": type_id, "label": label}
        if kind not in kinds:
            kinds.append(kind)
    return [{"toObjectId": int(to_id), "associationTypes": kinds} for to_id, kinds in by_target.items()]

"""Field updates of linked records, per target CRM, from the merges of HubSpot with each other CRM.

HubSpot is the hub (TOP-1): HubSpot and Salesforce are merged, HubSpot and Dynamics are merged, each under
its own connection's settings. A field either merge writes to Salesforce or Dynamics is that CRM's update.
When both merges would write the same HubSpot field of one record with different values (the two other
CRMs disagree and both changed since the last sync), the value whose record changed later is written: one
write per HubSpot field, so no value flips back and forth between runs.
"""

from __future__ import annotations

import pandas as pd

UPDATE_COLUMNS = ("kind", "record_id", "hubspot_id", "source_crm", "source_id", "field", "old", "new",
                  "decided_by", "conflict")  # fmt: skip


def field_updates(merged: dict[str, pd.DataFrame], kind: str) -> dict[str, pd.DataFrame]:
    """``merged``: other CRM -> ``merge_fields`` output (with ``hubspot_id``, ``other_id``, ``field``). Returns
    target CRM -> its updates (``UPDATE_COLUMNS``: the record to write, the field, old -> new, which rule
    decided, whether it was a conflict)."""
    out: dict[str, pd.DataFrame] = {}
    to_hubspot = []
    for crm, m in merged.items():
        w = m[m["write_other"]]
        out[crm] = pd.DataFrame({
            "kind": kind, "record_id": w["other_id"].to_numpy(), "hubspot_id": w["hubspot_id"].to_numpy(),
            "source_crm": "hubspot", "source_id": w["hubspot_id"].to_numpy(), "field": w["field"].to_numpy(),
            "old": w["other_value"].to_numpy(), "new": w["value"].to_numpy(), "decided_by": w["decided_by"].to_numpy(),
            "conflict": w["conflict"].to_numpy(),
        }, columns=list(UPDATE_COLUMNS))  # fmt: skip
        h = m[m["write_hubspot"]]
        to_hubspot.append(pd.DataFrame({
            "kind": kind, "record_id": h["hubspot_id"].to_numpy(), "hubspot_id": h["hubspot_id"].to_numpy(),
            "source_crm": crm, "source_id": h["other_id"].to_numpy(), "field": h["field"].to_numpy(),
            "old": h["hubspot_value"].to_numpy(), "new": h["value"].to_numpy(),
            "decided_by": h["decided_by"].to_numpy(), "conflict": h["conflict"].to_numpy(),
            "_at": pd.to_datetime(h["other_changed_at"], utc=True).to_numpy(),
        }))  # fmt: skip
    hs = pd.concat(to_hubspot, ignore_index=True) if to_hubspot else pd.DataFrame(columns=[*UPDATE_COLUMNS, "_at"])
    if len(hs):
        # one value per HubSpot record and field: the later change among the CRMs that would write it
        hs = hs.sort_values("_at", kind="stable").drop_duplicates(["record_id", "field"], keep="last")
    out["hubspot"] = hs.drop(columns="_at").reset_index(drop=True)[list(UPDATE_COLUMNS)]
    return out

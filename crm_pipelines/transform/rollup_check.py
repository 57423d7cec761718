"""ROLL-1 drift check: our HubSpot-only contact rollups against HubSpot's own calculated properties.

HubSpot computes the five rollup properties of SPEC's table itself (read-only there); ``transform.rollups``
computes the same figures from the extracted HubSpot deals, associations and pipelines. Any contact where the
two disagree is a finding: a definition that drifted, data the extract missed, or a contact whose recomputed
values were not extracted yet. Pure: frames in, a ``CheckOutcome`` out.

Compared per contact and figure: counts as integers, amounts to the cent, dates to the millisecond. "No value"
and zero are one value for the count and the total (HubSpot may show ``0.0`` where we have no row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipelines.transform.checks import SAMPLE, CheckOutcome, _sample
from crm_pipelines.transform.rollups import ROLLUP_COLUMNS

ROLLUP_DRIFT = "hubspot_rollups_match"
FIGURES = ROLLUP_COLUMNS[1:]
NUMBERS = ("num_associated_deals", "recent_deal_amount", "total_revenue")
ZERO_IS_BLANK = ("num_associated_deals", "total_revenue")
CENT = 0.005


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("Float64")


def _times(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype("datetime64[ms, UTC]")


def _plain(value: object) -> object:
    """A value for the check's JSON metadata: None, a float or an ISO timestamp."""
    if value is None or pd.isna(value):  # NaT too: a date HubSpot has and we do not (or the other way)
        return None
    return value.isoformat() if isinstance(value, pd.Timestamp) else float(value)


def rollup_drift(ours: pd.DataFrame, hubspot: pd.DataFrame, sample: int = SAMPLE) -> CheckOutcome:
    """``ours``: the ``contact_rollups`` table (``ROLLUP_COLUMNS``); ``hubspot``: the live extracted HubSpot
    contacts, ``id`` and the five properties as the API returned them. One finding per contact and figure
    that differ; ``by`` counts them per figure; the sample shows ours and HubSpot's value side by side."""
    h = hubspot.reindex(columns=["id", *FIGURES]).rename(columns={"id": "contact_id"})
    h["contact_id"] = h["contact_id"].astype(str)
    o = ours.reindex(columns=list(ROLLUP_COLUMNS)).copy()
    o["contact_id"] = o["contact_id"].astype(str)
    both = h.merge(o, on="contact_id", how="outer", suffixes=("_hubspot", "_ours"))
    parts = []
    for f in FIGURES:
        theirs, mine = both[f"{f}_hubspot"], both[f"{f}_ours"]
        if f in NUMBERS:
            a, b = _numbers(theirs), _numbers(mine)
            if f in ZERO_IS_BLANK:
                a, b = a.fillna(0), b.fillna(0)
            same = (a.isna() & b.isna()) | ((a - b).abs() < CENT).fillna(False)
        else:
            a, b = _times(theirs), _times(mine)
            same = (a.isna() & b.isna()) | (a == b).fillna(False)
        differ = ~same.to_numpy(dtype=bool)
        if differ.any():
            parts.append(pd.DataFrame({
                "contact_id": both["contact_id"].to_numpy()[differ], "figure": f,
                "ours": np.asarray(b.astype(object))[differ], "hubspot": np.asarray(a.astype(object))[differ],
            }))  # fmt: skip
    found = (pd.concat(parts, ignore_index=True).sort_values(["contact_id", "figure"], ignore_index=True)
             if parts else pd.DataFrame(columns=["contact_id", "figure", "ours", "hubspot"]))  # fmt: skip
    head = found.head(sample).copy()
    for col in ("ours", "hubspot"):
        head[col] = [_plain(v) for v in head[col].tolist()]
    by = {str(k): int(v) for k, v in found["figure"].value_counts().items()} if len(found) else {}
    return CheckOutcome(ROLLUP_DRIFT, found.empty, len(found), by, _sample(head, sample))

"""``crm-pipelines bench transform``: the full transform on generated mirror frames, then an incremental one.

The universe's scale is its number of people; ``contacts`` picks it (about 1.8 contact records per person
across the three CRMs); company and deal records are topped up to the requested totals (``pad_to``).
The frames (HubSpot, Salesforce and Dynamics mirrors, built like the sandboxes seed them) are made before
the clock starts. Peak RSS is the
process's high-water mark (VmHWM), so it includes the input frames.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from crm_pipelines.bench.universe_frames import universe_mirrors
from crm_pipelines.memory import peak_rss_mb
from crm_pipelines.sandbox.universe import Universe
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.incremental import apply_changes, incremental_changes
from crm_pipelines.transform.pipeline import TransformSettings, run_transform


def changed_records(mirrors: Mirrors, n: int, seed: int) -> Mirrors:
    """``n`` edits spread over contacts of all CRMs and HubSpot deals, as people make them in the CRMs:
    emails re-cased or replaced, deal amounts and stages changed. Returns only the changed rows."""
    rng = np.random.default_rng(seed)
    now = pd.Timestamp("2026-07-01T12:00:00Z")
    out = {}
    share = {
        ("hubspot", "contacts"): 0.4,
        ("salesforce", "Contact"): 0.2,
        ("salesforce", "Lead"): 0.1,
        ("dynamics", "contacts"): 0.1,
        ("hubspot", "deals"): 0.2,
    }
    email_col = {"hubspot": "email", "salesforce": "Email", "dynamics": "emailaddress1"}
    for key, part in share.items():
        frame = mirrors.frames[key]
        take = frame.iloc[np.sort(rng.choice(len(frame), int(n * part), replace=False))].copy()
        take["modified_at"] = now
        if key == ("hubspot", "deals"):
            take["amount"] = (pd.to_numeric(take["amount"], errors="coerce").fillna(0) + 100).astype(str)
        else:
            col = email_col[key[0]]
            e = take[col].astype("string")
            half = np.arange(len(take)) % 2 == 0
            take[col] = e.str.upper().where(~half, "changed." + e.fillna("x@example.org"))
        out[key] = take
    return Mirrors(out)


def pad_to(mirrors: Mirrors, companies: int, deals: int) -> Mirrors:
    """Top the company and deal records (summed over the three CRMs) up to the requested sizes with
    HubSpot-only copies under new ids: one universe scale cannot hit all three sizes at once (it yields
    ~1.8 contact records, ~0.23 company records and ~0.5 deal records per person)."""
    frames = dict(mirrors.frames)
    for key, objs, target, domain in (
        (("hubspot", "companies"), ("companies", "Account", "accounts"), companies, True),
        (("hubspot", "deals"), ("deals", "Opportunity", "opportunities"), deals, False),
    ):
        have = sum(len(f) for (crm, obj), f in frames.items() if obj in objs)
        missing = target - have
        if missing <= 0:
            continue
        base = frames[key]
        extra = base.iloc[np.arange(missing) % len(base)].copy()
        extra["id"] = pd.array([f"9{i:011d}" for i in range(missing)], dtype="string")
        if domain:
            extra["domain"] = "pad" + extra["id"].astype(str) + ".example"
        frames[key] = pd.concat([base, extra], ignore_index=True)
    return Mirrors(frames)


def run_transform_bench(
    contacts: int, companies: int, deals: int, seed: int = 42, changes: int = 1_000
) -> dict[str, Any]:
    universe = Universe(seed, max(100, contacts))
    t = time.perf_counter()
    mirrors = pad_to(universe_mirrors(universe), companies, deals)
    build_s = time.perf_counter() - t
    settings = TransformSettings()
    t = time.perf_counter()
    result = run_transform(mirrors, None, settings)
    full_s = time.perf_counter() - t
    delta = changed_records(mirrors, changes, seed)
    sizes = {f"{crm}.{obj}": len(f) for (crm, obj), f in mirrors.frames.items()}
    # the incremental run: what changes in each result table (what the asset writes to the state database)
    t = time.perf_counter()
    changes = incremental_changes(result, delta, None, settings)
    incremental_s = time.perf_counter() - t
    # rebuilding every full frame from it is O(size of the result): reported, not part of the target
    t = time.perf_counter()
    inc = apply_changes(result, changes)
    apply_s = time.perf_counter() - t
    return {
        "full_s": round(full_s, 3),
        "incremental_s": round(incremental_s, 3),
        "incremental_apply_s": round(apply_s, 3),
        "incremental_rows_changed": {k: [len(c.removed), len(c.added)] for k, c in changes.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "identities": len(result.contacts.identities),
        "email_identities": int(result.contacts.identities["email"].notna().sum()),
        "identities_after_incremental": len(inc.contacts.identities),
        "changed_records": int(sum(len(f) for f in delta.frames.values())),
        "requested": {"contacts": contacts, "companies": companies, "deals": deals},
        "scale_people": universe.scale,
        "records": {
            "contacts": len(result.contacts.members),
            "companies": sum(sizes[k] for k in ("hubspot.companies", "salesforce.Account", "dynamics.accounts")),
            "deals": sum(sizes[k] for k in ("hubspot.deals", "salesforce.Opportunity", "dynamics.opportunities")),
        },
        "company_identities": len(result.companies.identities),
        "deal_identities": len(result.deals),
        "ambiguity_findings": len(result.contacts.findings),
        "build_frames_s": round(build_s, 1),
        "frames": sizes,
    }

"""What the demo says after each step, in a user's words, read back from the state database (issue 15)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Engine

from crm_pipelines.demo_progress import LABELS, Counts
from crm_pipelines.settings import Settings

EXAMPLES = 3


def imported_lines(done: Counts, expected: Counts) -> list[str]:
    """Per CRM: records imported, and per object fetched / expected (the sandbox's own count)."""
    lines = []
    for crm, label in LABELS.items():
        keys = [k for k in expected if k[0] == crm]
        parts = ", ".join(f"{obj} {done.get((crm, obj), 0):,}/{expected[(crm, obj)]:,}" for _, obj in keys)
        lines.append(f"   {label}: {sum(done.get(k, 0) for k in keys):,} records imported ({parts})")
    return lines


def transform_lines(engine: Engine) -> list[str]:
    """Identities and duplicates (CON-2, CON-11), unmapped stages (DEAL-2) and the auto-map proposal."""
    from crm_pipelines.defs.unified.stored_checks import stored_checks
    from crm_pipelines.state import unified

    members = unified.read(engine, "contact_members")
    identities = unified.read(engine, "contact_identities")
    found = stored_checks(engine)
    duplicates, unmapped = found["duplicate_emails"], found["unmapped_stages"]
    in_several = int((members.groupby("identity_id")["crm"].nunique() > 1).sum()) if len(members) else 0
    lines = [f"   {len(members):,} contact records form {len(identities):,} people (identities by email, CON-2); "
             f"{in_several:,} of them are in more than one CRM",
             f"   {duplicates.count:,} duplicate emails inside one CRM (CON-11): {_by(duplicates.by)}"]  # fmt: skip
    stages = ", ".join(f"{s['crm']} {s['stage']!r} ({s['deals']})" for s in unmapped.sample[:4])
    lines.append(f"   {unmapped.count:,} deals in stages without a mapping (DEAL-2, not synced, reported)"
                 + (f", e.g. {stages}" if stages else ""))  # fmt: skip
    proposal = unified.read(engine, "stage_proposals")
    if len(proposal):  # DEAL-2 auto-map: pairs by text similarity, for review
        proposed = proposal[proposal["source"] == "auto"]
        pairs = ", ".join(f"{r['label']!r} → {r['hubspot_label']!r}" for _, r in proposed.head(EXAMPLES).iterrows())
        lines.append(f"   stage auto-map proposes {len(proposed)} pairs to review (unified/deal_identities, as YAML)"
                     + (f": {pairs}" if pairs else ""))  # fmt: skip
    return lines


def _by(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def plan_lines(engine: Engine) -> list[str]:
    """Per target CRM: creates per object, field updates, and examples of old → new."""
    from crm_pipelines.state import plan_store

    lines = []
    for crm, label in LABELS.items():
        summary = plan_store.summary(engine, crm)
        creates = _dim(summary, "creates", "object")
        updates = sum(_dim(summary, "updates", "rows").values())
        findings = sum(_dim(summary, "findings", "rows").values())
        lines.append(f"   {label}: {sum(creates.values()):,} records to create ({_by(creates)}), "
                     f"{updates:,} field updates, {findings:,} findings")  # fmt: skip
        for row in plan_store.head(engine, crm, "creates", 1).to_dict("records"):
            kind = f" as {row['object_type']}" if row.get("object_type") else ""
            source = str(row.get("source_id"))
            source = repr(source) if " " in source else source  # a pipeline is named by its label
            lines.append(f"      create {row.get('object')}{kind}: {LABELS.get(str(row.get('source_crm')), '')} "
                         f"{source} → a new {label} record")  # fmt: skip
        for row in plan_store.head(engine, crm, "updates", 2).to_dict("records"):  # two examples each
            lines.append(f"      {row.get('kind')} {row.get('record_id')} {row.get('field')}: "
                         f"{_text(row.get('old'))} → {_text(row.get('new'))} ({row.get('decided_by')})")  # fmt: skip
    return lines


def _dim(summary: Any, part: str, dim: str) -> dict[str, int]:
    """One dimension of the stored plan's counts (``plan_store.summary``): value -> records."""
    rows = summary[(summary["part"] == part) & (summary["dim"] == dim)]
    return {str(v): int(n) for v, n in zip(rows["value"], rows["n"], strict=True)}


def _text(value: Any) -> str:
    return "(blank)" if value is None or value == "" else repr(value)


def write_lines(engine: Engine, writes: dict[str, dict[str, Any]]) -> list[str]:
    """Per CRM: what its write asset did (created, updated, refused with the API's codes, API calls)."""
    from crm_pipelines.state import outbox

    lines = []
    for crm, label in LABELS.items():
        m = writes.get(crm)
        if m is None:
            lines.append(f"   {label}: no write run")
            continue
        failures = outbox.failures(engine, crm)
        codes = failures["code"].fillna("unknown").value_counts().head(2) if len(failures) else {}
        why = f" ({_by({str(k): int(v) for k, v in codes.items()})}; kept, retried later: OPS-6)" if len(codes) else ""
        lines.append(f"   {label}: {m.get('created', 0):,} created, {m.get('updated', 0):,} updated, "
                     f"{m.get('associated', 0):,} associations, {m.get('failed', 0):,} refused by the CRM{why}, "
                     f"{m.get('api_calls', 0):,} API calls")  # fmt: skip
    return lines


def budget_lines(engine: Engine, settings: Settings) -> list[str]:
    """API calls in the last 24 h per connection against its ``api_call_limit`` (OPS-2)."""
    from crm_pipelines.state.api_usage import SqlCallLedger

    used = SqlCallLedger(engine).usage(time.time())
    parts = []
    for crm, label in LABELS.items():
        limit = getattr(settings.connections, crm).api_call_limit
        n = used.get(crm, 0)
        parts.append(f"{label} {n:,} of {limit:,} ({n / limit:.1%})" if limit else f"{label} {n:,} (no limit)")
    return ["   " + ", ".join(parts)]

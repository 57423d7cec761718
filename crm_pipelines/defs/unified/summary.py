"""A few lines on what the transform found, read back from its result tables (for the demo)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from crm_pipelines.state.unified import read as read_frame


def summarize(engine: Engine) -> list[str]:
    identities = read_frame(engine, "contact_identities")
    members = read_frame(engine, "contact_members")
    findings = read_frame(engine, "contact_findings")
    stages = read_frame(engine, "deal_stages")
    rollups = read_frame(engine, "contact_rollups")
    lines = [
        "",
        f"Transform: {len(members)} contact records across the CRMs form {len(identities)} identities "
        f"(CON-2); {len(findings)} duplicate-email findings inside one CRM (CON-11).",
    ]
    if "status" in stages:
        lines.append(f"Deals per stage-mapping status (DEAL-2): {stages['status'].value_counts().to_dict()}")
    if len(rollups) and "total_revenue" in rollups:
        top = rollups.sort_values("total_revenue", ascending=False).head(3)
        lines.append("Top contacts by total_revenue (rollups):")
        cols = [
            c
            for c in (
                "hubspot_id",
                "contact_id",
                "id",
                "num_associated_deals",
                "total_revenue",
                "recent_deal_amount",
                "recent_deal_close_date",
            )
            if c in top
        ]
        lines += ["  " + ", ".join(f"{c}={row[c]}" for c in cols) for row in top.to_dict("records")]
    return lines

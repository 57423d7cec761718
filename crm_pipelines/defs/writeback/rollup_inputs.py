"""The cross-CRM rollup updates (ROLL-2/ROLL-3) from the state database: each CRM's deal facts, the deal →
contact pairs and the values the configured target fields hold now, handed to ``sync/rollup_plan.py``.

Read only when a connection names rollup targets (``sync.<crm>.rollup_targets``; none by default): the held
values are a column of every contact record of that CRM, read from the mirror (the extract reads the target
fields: ``defs/extract/settings_fields.py``).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines.settings import Settings
from crm_pipelines.state import mirror, unified
from crm_pipelines.sync.plan import FINDING_COLUMNS
from crm_pipelines.sync.rollup_plan import rollup_plan, rollup_targets

# Dataverse opportunity state: 1 is Won (0 Open, 2 Lost)
_DATAVERSE_WON = 1


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _live(engine: Engine, crm: str, obj: str, columns: list[str]) -> pd.DataFrame:
    frame = mirror.read_records(engine, crm, obj, columns=columns)
    return frame[~frame["deleted"].astype(bool)].reset_index(drop=True)


def deal_facts_by_crm(engine: Engine) -> dict[str, pd.DataFrame]:
    """CRM -> its live deals' ``id``, ``created_at``, ``close_date``, ``amount``, ``currency``, ``is_won``.
    Won comes from the stage mapping's view of each stage (``deal_stages``) where it has the deal."""
    won = unified.read(engine, "deal_stages")[["crm", "id", "is_won"]]
    hubspot = unified.read(engine, "deal_facts")
    out = {"hubspot": pd.DataFrame({"id": hubspot["deal_id"].astype(str), "created_at": hubspot["created_at"],
                                    "close_date": hubspot["close_date"], "amount": hubspot["amount"],
                                    "is_won": hubspot["is_won"].astype(bool)})}  # fmt: skip
    sf = _live(engine, "salesforce", "Opportunity", ["CreatedDate", "CloseDate", "Amount", "CurrencyIsoCode", "IsWon"])
    out["salesforce"] = pd.DataFrame({
        "id": sf["id"].astype(str), "created_at": _column(sf, "CreatedDate"), "close_date": _column(sf, "CloseDate"),
        "amount": _column(sf, "Amount"), "currency": _column(sf, "CurrencyIsoCode"),
        "is_won": _column(sf, "IsWon").astype("boolean").fillna(False).astype(bool)})  # fmt: skip
    dy = _live(engine, "dynamics", "opportunities", ["createdon", "actualclosedate", "estimatedclosedate",
                                                     "actualvalue", "estimatedvalue", "statecode"])  # fmt: skip
    state = pd.to_numeric(_column(dy, "statecode"), errors="coerce")
    # a closed opportunity's actual figures, an open one's estimates
    out["dynamics"] = pd.DataFrame({
        "id": dy["id"].astype(str), "created_at": _column(dy, "createdon"),
        "close_date": _column(dy, "actualclosedate").where(_column(dy, "actualclosedate").notna(),
                                                           _column(dy, "estimatedclosedate")),
        "amount": _column(dy, "actualvalue").where(_column(dy, "actualvalue").notna(), _column(dy, "estimatedvalue")),
        "is_won": (state == _DATAVERSE_WON).fillna(False).to_numpy(dtype=bool)})  # fmt: skip
    for crm in ("salesforce", "dynamics"):  # the stage mapping's won flag speaks where it has the deal
        flags = won[won["crm"] == crm].set_index(won[won["crm"] == crm]["id"].astype(str))["is_won"]
        mapped = out[crm]["id"].map(flags)
        out[crm]["is_won"] = mapped.where(mapped.notna(), out[crm]["is_won"]).astype(bool)
    return out


def held_values(engine: Engine, targets: dict[str, dict[str, str]], contact_entity: str) -> pd.DataFrame:
    """``crm``, ``record_id``, ``field``, ``value``: what each target field holds now, per contact record."""
    objects = {"hubspot": ("contacts",), "salesforce": ("Contact", "Lead"), "dynamics": (f"{contact_entity}s",)}
    parts = []
    for crm, fields in targets.items():
        names = sorted(set(fields.values()))
        for obj in objects[crm]:
            frame = _live(engine, crm, obj, names)
            for name in names:
                parts.append(pd.DataFrame({"crm": crm, "record_id": frame["id"].astype(str).to_numpy(),
                                           "field": name, "value": _column(frame, name).to_numpy()}))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=["crm", "record_id", "field", "value"])
    out = pd.concat(parts, ignore_index=True)
    return out[out["value"].notna()].reset_index(drop=True)


def rollup_plan_from_state(engine: Engine, settings: Settings) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Target CRM -> the ROLL-2/3 updates of its contacts' target fields, and the findings (``FINDING_COLUMNS``:
    totals not summed) per target; nothing read when no connection names rollup targets."""
    targets = rollup_targets(settings)
    if not targets:
        return {}, pd.DataFrame(columns=list(FINDING_COLUMNS))
    updates, found = rollup_plan(
        settings, unified.read(engine, "deal_identities"), deal_facts_by_crm(engine),
        unified.read(engine, "deal_contact"), unified.read(engine, "contact_identities"),
        held_values(engine, targets, settings.sync.dynamics.contact_entity))  # fmt: skip
    findings = pd.concat([pd.DataFrame({
        "object": "contact", "crm": "rollup", "id": found["contact_identity"].astype(object).to_numpy(),
        "target_crm": crm, "reason": ("ROLL-2 " + found["figure"] + ": " + found["reason"]).to_numpy()})
        for crm in targets], ignore_index=True)  # fmt: skip
    return updates, findings

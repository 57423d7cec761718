"""Cross-CRM contact rollups (ROLL-2) and the field updates that write them where they changed (ROLL-3).

The five figures of SPEC's rollup table, per contact *identity*, over the deals of all three CRMs: a deal is
counted once per deal identity (a deal present in two CRMs is one deal), and its figures come from the hub's
record when HubSpot has it, else Salesforce's, else Dynamics'. The figures themselves are
``transform.rollups.contact_rollups``'s, so HubSpot-only and cross-CRM rollups follow one definition.

Amounts are summed in the home currency: a deal's ``amount_home`` where its CRM provides the converted value,
else its ``amount`` when its currency is the home one (or unknown). A contact whose closed-won amounts would
mix currencies that cannot be converted gets no ``total_revenue`` and a finding instead (reported, not summed).

The figures are written to the target fields each connection's settings name (``sync.<crm>.rollup_targets``;
none by default), to every contact record of the identity in that CRM, and only where the figure differs from
what the target field holds (ROLL-3): a contact whose deals did not change gets no update, and a second plan
after the first is applied is empty. HubSpot's own calculated properties are read-only there and never written
(ROLL-1): naming one as a target is a settings error, and ``rollup_updates`` refuses it too.

Pure functions over frames, vectorised; the output has ``field_plan.UPDATE_COLUMNS`` so a plan concatenates
it with the contact field updates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import HUBSPOT_CALCULATED_ROLLUPS, Settings
from crm_pipelines.sync.field_inputs import comparable
from crm_pipelines.sync.field_plan import UPDATE_COLUMNS
from crm_pipelines.transform.rollups import contact_rollups

FIGURES = ("num_associated_deals", "first_deal_created_date", "recent_deal_close_date", "recent_deal_amount",
           "total_revenue")  # fmt: skip
# the text form a figure is compared and written in (``field_inputs.comparable`` kinds)
KINDS = {"num_associated_deals": "number", "first_deal_created_date": "datetime", "recent_deal_close_date": "date",
         "recent_deal_amount": "number", "total_revenue": "number"}  # fmt: skip
# figures for which "no value" and zero are one value (a contact without deals, a target never written)
ZERO_IS_BLANK = ("num_associated_deals", "total_revenue")
DEAL_COLUMNS = ("deal_identity", "created_at", "close_date", "amount", "amount_home", "currency", "is_won")
PRECEDENCE = ("hubspot", "salesforce", "dynamics")  # whose record speaks for a deal present in several CRMs
DECIDED_BY = "ROLL-2"
CONTACT_LINKS = {"hubspot": ("hubspot_id", None), "salesforce": ("salesforce_id", "salesforce_type"),
                 "dynamics": ("dynamics_id", "dynamics_type")}  # fmt: skip
HOME = "home"


def rollup_targets(settings: Settings) -> dict[str, dict[str, str]]:
    """CRM -> {figure: target field} of the enabled connections that configure any."""
    out = {}
    for crm in PRECEDENCE:
        if not getattr(settings.connections, crm).enabled:
            continue
        fields = getattr(settings.sync, crm).rollup_targets.fields()
        if fields:
            out[crm] = fields
    return out


def deal_facts(deal_identities: pd.DataFrame, facts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per deal identity (``DEAL_COLUMNS``) from each CRM's deal facts (``id`` plus the other columns
    but ``deal_identity``; a CRM may omit ``amount_home`` and ``currency``), the first CRM of ``PRECEDENCE`` that
    holds the deal speaking for it. ``deal_identities``: ``identity_id`` and ``<crm>_id`` (unified table)."""
    parts, taken = [], pd.Index([], dtype=object)
    for crm in PRECEDENCE:
        f = facts.get(crm)
        if f is None or f.empty or f"{crm}_id" not in deal_identities:
            continue
        ids = deal_identities[["identity_id", f"{crm}_id"]].dropna()
        ids = pd.DataFrame({"deal_identity": ids["identity_id"].astype(object).to_numpy(),
                            "id": ids[f"{crm}_id"].astype(str).to_numpy()})  # fmt: skip
        f = f.assign(id=f["id"].astype(str))
        joined = ids.merge(f, on="id", how="inner")
        joined = joined[~joined["deal_identity"].isin(taken)]
        taken = taken.append(pd.Index(joined["deal_identity"]))
        parts.append(joined.reindex(columns=list(DEAL_COLUMNS)))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in DEAL_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out["created_at"] = pd.to_datetime(out["created_at"], utc=True, errors="coerce", format="ISO8601")
    out["close_date"] = pd.to_datetime(out["close_date"], utc=True, errors="coerce", format="ISO8601")
    for col in ("amount", "amount_home"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Float64")
    out["is_won"] = out["is_won"].astype("boolean").fillna(False).astype(bool)
    return out


def cross_crm_rollups(deals: pd.DataFrame, deal_contacts: pd.DataFrame,
                      home_currency: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """ROLL-2. ``deals``: ``DEAL_COLUMNS`` (``deal_facts``); ``deal_contacts``: ``deal_identity``,
    ``contact_identity`` (the unified ``deal_contact`` table; one row per CRM stating the pair is fine).
    Returns the rollups (``contact_identity`` + ``FIGURES``, one row per identity with a deal) and the
    findings (``contact_identity``, ``figure``, ``reason``) of totals not summed."""
    d = deals.reindex(columns=list(DEAL_COLUMNS)).copy()
    amount = pd.to_numeric(d["amount"], errors="coerce").astype("Float64")
    home = pd.to_numeric(d["amount_home"], errors="coerce").astype("Float64")
    currency = d["currency"].astype("string").str.strip().str.upper()
    own = currency.notna() & (currency != "") & (currency != (home_currency or "").upper())
    # the amount that is summed and its currency: converted where the CRM converted it, else its own
    d["amount"] = home.where(home.notna(), amount)
    d["label"] = np.where(home.notna().to_numpy(dtype=bool) | ~own.fillna(False).to_numpy(dtype=bool),
                          HOME, currency.fillna(HOME).astype(object).to_numpy())  # fmt: skip
    pairs = deal_contacts[["deal_identity", "contact_identity"]].dropna().astype(object).drop_duplicates()
    rolled = contact_rollups(d.rename(columns={"deal_identity": "deal_id"}),
                             pairs.rename(columns={"deal_identity": "deal_id", "contact_identity": "contact_id"}))
    rolled = rolled.rename(columns={"contact_id": "contact_identity"})
    won = pairs.merge(d[d["is_won"] & d["amount"].notna()][["deal_identity", "label"]], on="deal_identity")
    labels = won.groupby("contact_identity")["label"].agg(lambda s: sorted(set(s)))
    mixed = labels[labels.map(len) > 1]
    rolled.loc[rolled["contact_identity"].isin(mixed.index), "total_revenue"] = pd.NA
    findings = pd.DataFrame({
        "contact_identity": mixed.index.astype(object),
        "figure": "total_revenue",
        "reason": [f"amounts in {', '.join(c for c in v if c != HOME)}{' and the home currency' if HOME in v else ''}"
                   " cannot be converted to the home currency: not summed" for v in mixed.tolist()],
    })  # fmt: skip
    return rolled.reset_index(drop=True), findings


def _blank_none(values: pd.Series) -> np.ndarray:
    v = values.astype(object)
    return v.where(v.notna(), None).to_numpy()


def _held(held: pd.DataFrame, crm: str) -> pd.DataFrame:
    if held is None or held.empty:
        return pd.DataFrame({"record_id": pd.Series(dtype=object), "field": pd.Series(dtype=object),
                             "old": pd.Series(dtype=object)})  # fmt: skip
    h = held[held["crm"] == crm] if "crm" in held else held
    return pd.DataFrame({"record_id": h["record_id"].astype(str).to_numpy(), "field": h["field"].to_numpy(),
                         "old": h["value"].astype(object).to_numpy()}).drop_duplicates(["record_id", "field"])


def rollup_updates(rollups: pd.DataFrame, identities: pd.DataFrame, held: pd.DataFrame | None,
                   targets: Mapping[str, Mapping[str, str]],
                   findings: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:  # fmt: skip
    """ROLL-2/ROLL-3: target CRM -> its updates (``UPDATE_COLUMNS``, kind ``contact``, ``decided_by``
    ``ROLL-2``) of the configured target fields whose value differs from what the record holds.

    ``rollups``: ``cross_crm_rollups``; ``identities``: the unified ``contact_identities`` (``identity_id``,
    ``hubspot_id``, ``salesforce_id``, ``dynamics_id``); ``held``: what each target field holds now
    (``crm``, ``record_id``, ``field``, ``value``; a missing row is a blank field); ``targets``: CRM -> {figure:
    field} (``rollup_targets``); ``findings``: totals left out (not written). A contact identity without any
    deal has no figures: its count is 0 and the rest blank, so a target that never held one is left alone."""
    bad = sorted(set(targets.get("hubspot", {}).values()) & set(HUBSPOT_CALCULATED_ROLLUPS))
    if bad:
        raise ValueError(f"sync.hubspot.rollup_targets names HubSpot's read-only calculated properties {bad} "
                         "(ROLL-1): the sync never writes them")  # fmt: skip
    out: dict[str, pd.DataFrame] = {}
    figures = rollups.set_index("contact_identity")
    skipped = (pd.MultiIndex.from_frame(findings[["contact_identity", "figure"]].astype(object))
               if findings is not None and len(findings) else None)  # fmt: skip
    for crm, fields in targets.items():
        id_col, _ = CONTACT_LINKS[crm]
        fields = {f: t for f, t in fields.items() if f in FIGURES}
        linked = identities[identities[id_col].notna()]
        if linked.empty or not fields:
            out[crm] = pd.DataFrame(columns=list(UPDATE_COLUMNS))
            continue
        ident = linked["identity_id"].astype(object).to_numpy()
        parts = []
        for figure, field in fields.items():
            values = figures[figure].reindex(ident) if figure in figures else pd.Series([pd.NA] * len(ident))
            new = comparable(pd.Series(values.to_numpy(), dtype=object), KINDS[figure])
            if figure == "num_associated_deals":
                new = new.where(pd.Series(new).notna(), "0")
            part = pd.DataFrame({"identity": ident, "record_id": linked[id_col].astype(str).to_numpy(),
                                 "hubspot_id": linked["hubspot_id"].astype(object).to_numpy(), "figure": figure,
                                 "field": field, "new": pd.Series(new).to_numpy()})  # fmt: skip
            if skipped is not None:
                part = part[~pd.MultiIndex.from_arrays([part["identity"], part["figure"]]).isin(skipped)]
            parts.append(part)
        plan = pd.concat(parts, ignore_index=True).merge(_held(held, crm), on=["record_id", "field"], how="left")
        if plan.empty:
            out[crm] = pd.DataFrame(columns=list(UPDATE_COLUMNS))
            continue
        old = pd.Series(plan["old"].to_numpy(), dtype=object)
        old_text = pd.concat([comparable(old[(plan["figure"] == f).to_numpy()], KINDS[f]) for f in FIGURES
                              if (plan["figure"] == f).any()]).sort_index()  # fmt: skip
        new_text = pd.Series(plan["new"].to_numpy(), dtype=object)
        zero = plan["figure"].isin(ZERO_IS_BLANK).to_numpy()
        same_blank = (old_text.isna().to_numpy() | (zero & (old_text == "0").to_numpy())) & (
            new_text.isna().to_numpy() | (zero & (new_text == "0").to_numpy()))
        changed = ~same_blank & (old_text.fillna("\0").to_numpy() != new_text.fillna("\0").to_numpy())
        w = plan[changed].sort_values(["record_id", "field"], kind="stable")
        out[crm] = pd.DataFrame({
            "kind": "contact", "record_id": w["record_id"].to_numpy(), "hubspot_id": w["hubspot_id"].to_numpy(),
            "source_crm": "rollup", "source_id": w["identity"].to_numpy(), "field": w["field"].to_numpy(),
            "old": _blank_none(w["old"]), "new": _blank_none(w["new"]), "decided_by": DECIDED_BY, "conflict": False,
        }, columns=list(UPDATE_COLUMNS)).reset_index(drop=True)  # fmt: skip
    return out


def rollup_plan(settings: Settings, deal_identities: pd.DataFrame, facts: Mapping[str, pd.DataFrame],
                deal_contacts: pd.DataFrame, identities: pd.DataFrame,
                held: pd.DataFrame | None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:  # fmt: skip
    """The whole of ROLL-2/ROLL-3 for a plan: target CRM -> rollup field updates, and the findings."""
    targets = rollup_targets(settings)
    if not targets:
        return {}, pd.DataFrame(columns=["contact_identity", "figure", "reason"])
    deals = deal_facts(deal_identities, facts)
    rollups, findings = cross_crm_rollups(deals, deal_contacts, settings.sync.rollup_home_currency)
    return rollup_updates(rollups, identities, held, targets, findings), findings

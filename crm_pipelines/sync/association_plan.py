"""Association changes per target CRM (DEAL-6): contact->company, deal->contact, deal->company.

The transform states every association as a pair of identities and the CRM that holds it (``unified``
``contact_company``, ``deal_contact``, ``deal_company``). A target gets the pairs another CRM holds and it
lacks, and only these (only differences from what the target has; nothing is removed):

- HubSpot is the hub (TOP-1): HubSpot gets the associations of Salesforce and Dynamics; Salesforce and
  Dynamics get HubSpot's (they meet only through HubSpot).
- Only between linked identities: both records must already exist in the target (a record the plan creates
  is associated on the run after its create). Such a pair is not listed as left out: the record's own row
  (its create, or why it is not created) says what happens, and on a first sync they would be most of the
  plan (millions of pairs whose records the same plan creates).
- Only where both objects sync on that connection (their switches) in that direction (CON-1: the first
  object's direction, contacts for contact->company, deals for the deal associations).
- How each is written: HubSpot an association (v4 batch create); Salesforce an OpportunityContactRole
  (deal->contact, a Contact only: a Lead cannot hold one) or the record's ``AccountId`` (Contact, Opportunity);
  Dynamics the record's lookup (``parentcustomerid`` of a contact, ``parentaccountid`` of a lead or an
  opportunity, ``parentcontactid`` of an opportunity). A lookup holds one value: it is set only when the
  record has none yet (else reported: the target holds another), and to one company (the lowest identity)
  when HubSpot has several.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crm_pipelines.settings.model import Direction
from crm_pipelines.sync.plan import ASSOCIATION_COLUMNS, LEFT_OUT_COLUMNS, concat, frame

# association kind -> its two ends: (column in the unified pair table, object)
KINDS = {
    "contact_company": (("contact_identity", "contact"), ("company_identity", "company")),
    "deal_contact": (("deal_identity", "deal"), ("contact_identity", "contact")),
    "deal_company": (("deal_identity", "deal"), ("company_identity", "company")),
}
_SINGLE = {
    # (target, kind, the first record's type) -> the field that holds the association
    ("salesforce", "contact_company", "Contact"): "Contact.AccountId",
    ("salesforce", "deal_company", "Opportunity"): "Opportunity.AccountId",
    ("dynamics", "contact_company", "contact"): "contact.parentcustomerid",
    ("dynamics", "contact_company", "lead"): "lead.parentaccountid",
    ("dynamics", "deal_contact", "opportunity"): "opportunity.parentcontactid",
    ("dynamics", "deal_company", "opportunity"): "opportunity.parentaccountid",
}
_TYPES = {"company": {"salesforce": "Account", "dynamics": "account"},
          "deal": {"salesforce": "Opportunity", "dynamics": "opportunity"}}  # fmt: skip


def _record_columns(identities: pd.DataFrame, obj: str, crm: str) -> tuple[np.ndarray, np.ndarray]:
    """Per identity row: its record id in ``crm`` (None where it has none) and that record's type."""
    ids = identities[f"{crm}_id"].astype(object).to_numpy()
    if crm == "hubspot":
        return ids, np.full(len(ids), obj, dtype=object)
    t = identities[f"{crm}_type"] if f"{crm}_type" in identities else _TYPES[obj][crm]
    types = np.full(len(ids), t, dtype=object) if isinstance(t, str) else np.asarray(t, dtype=object)
    return ids, types


def _positions(pairs: pd.DataFrame, column: str, identities: pd.DataFrame, cache: dict | None,
               key: tuple) -> np.ndarray:
    """Each pair end's row in ``identities`` (-1: none), computed once per ``cache`` (every target's plan looks
    the same millions of ends up)."""
    if cache is not None and key in cache:
        return cache[key]
    index = pd.Index(identities["identity_id"].astype(object).to_numpy())
    rows = np.arange(len(index))
    if not index.is_unique:  # an identity's first row
        first = ~index.duplicated()
        index, rows = index[first], rows[first]
    at = index.get_indexer(pairs[column].astype(object).to_numpy())
    out = np.where(at >= 0, rows[np.maximum(at, 0)], -1)
    if cache is not None:
        cache[key] = out
    return out


def association_changes(target: str, pairs: Mapping[str, pd.DataFrame], identities: Mapping[str, pd.DataFrame],
                        syncing: Mapping[str, Mapping[str, tuple[bool, Direction]]], cache: dict | None = None,
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pairs``: kind -> the unified pair table; ``identities``: object -> its identities (with ``<crm>_id``
    and, for contacts, ``<crm>_type``); ``syncing``: other CRM -> object -> (switch on, direction); ``cache``:
    shared by the calls for each target over the same tables. Returns the associations to make in ``target``
    (``ASSOCIATION_COLUMNS``) and those left out with why."""
    made, skipped = [], []
    sources = [c for c in syncing] if target == "hubspot" else ["hubspot"]
    for kind, ((left_col, left_obj), (right_col, right_obj)) in KINDS.items():
        table = pairs.get(kind)
        if table is None or table.empty:
            continue
        connection = target if target != "hubspot" else None
        wanted = []
        for source in sources:
            crm = connection or source  # the connection the association travels over
            rules = syncing.get(crm, {})
            on_l, dir_l = rules.get(left_obj, (False, Direction.TWO_WAY))
            on_r, _ = rules.get(right_obj, (False, Direction.TWO_WAY))
            blocked = Direction.OTHER_TO_HUBSPOT if target != "hubspot" else Direction.HUBSPOT_TO_OTHER
            if on_l and on_r and dir_l != blocked:
                wanted.append(source)
        if not wanted:
            continue
        # both records in the target first: on a first sync that leaves few of millions of pairs (their records
        # are created by the same plan), and the rest is looked up by position, not merged on text keys
        pos_l = _positions(table, left_col, identities[left_obj], cache, (kind, left_col))
        pos_r = _positions(table, right_col, identities[right_obj], cache, (kind, right_col))
        left_ids, left_types = _record_columns(identities[left_obj], left_obj, target)
        right_ids, _ = _record_columns(identities[right_obj], right_obj, target)
        crms = table["crm"].astype(object).to_numpy()
        chosen = np.isin(crms, wanted)
        at_l, at_r, src = pos_l[chosen], pos_r[chosen], table[chosen]
        both = (at_l >= 0) & (at_r >= 0)
        both[both] = ~pd.isna(left_ids[at_l[both]]) & ~pd.isna(right_ids[at_r[both]])
        at_l, at_r = at_l[both], at_r[both]
        want = pd.DataFrame({
            "from_identity": src[left_col].astype(object).to_numpy()[both],
            "to_identity": src[right_col].astype(object).to_numpy()[both],
            "source_crm": crms[chosen][both], "from_id": left_ids[at_l], "from_type": left_types[at_l],
            "to_id": right_ids[at_r]})  # fmt: skip
        # one row per pair, from the first source CRM that holds it
        rank = want["source_crm"].map({crm: i for i, crm in enumerate(wanted)})
        want = (want.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank")
                .drop_duplicates(["from_identity", "to_identity"]))  # fmt: skip
        mine = table[crms == target]
        held = pd.DataFrame({"from_identity": mine[left_col].astype(object).to_numpy(),
                             "to_identity": mine[right_col].astype(object).to_numpy()})  # fmt: skip
        held = held[held["from_identity"].isin(set(want["from_identity"]))].drop_duplicates()
        want = want.merge(held.assign(_held=True), on=["from_identity", "to_identity"], how="left")
        want = want[want["_held"].isna()].drop(columns="_held").reset_index(drop=True)
        if target == "hubspot":
            made.append(want.assign(object=kind, via="association", action="associate",
                                    record_id=want["from_id"].astype(str) + ">" + want["to_id"].astype(str)))
            continue
        fields = {t: v for (tg, k, t), v in _SINGLE.items() if tg == target and k == kind}
        via = want["from_type"].map(fields).astype(object)
        if target == "salesforce" and kind == "deal_contact":
            lead = (want["to_identity"].map(identities["contact"].set_index("identity_id")["salesforce_type"])
                    == "Lead").to_numpy()  # fmt: skip
            skipped.append(_left_out(want[lead], kind, target, "DEAL-6 a Salesforce Lead has no contact role"))
            ocr = want[~lead]
            made.append(ocr.assign(object=kind, via="OpportunityContactRole", action="create",
                                   record_id=ocr["from_id"].astype(str) + ">" + ocr["to_id"].astype(str)))
            continue
        no_field = via.isna().to_numpy()
        skipped.append(_left_out(want[no_field], kind, target,
                                 "DEAL-6 this record type holds no such association in " + target))
        single = want[~no_field].assign(via=via[~no_field])
        # a lookup holds one value: only where the record has none, and one per record
        taken = single["from_identity"].isin(held["from_identity"]).to_numpy()
        skipped.append(_left_out(single[taken], kind, target, f"DEAL-6 the {target} record holds another"))
        single = single[~taken].sort_values(["from_identity", "to_identity"]).drop_duplicates("from_identity")
        made.append(single.assign(object=kind, action="update", record_id=single["from_id"]))
    return concat(ASSOCIATION_COLUMNS, made), concat(LEFT_OUT_COLUMNS, skipped)


def _left_out(rows: pd.DataFrame, kind: str, target: str, reason: str) -> pd.DataFrame:
    pair = rows["from_identity"].astype(str) + " > " + rows["to_identity"].astype(str)
    out = rows.assign(object=kind, identity_id=pair, source_id=rows["from_identity"], target_crm=target, reason=reason)
    return frame(LEFT_OUT_COLUMNS, out)

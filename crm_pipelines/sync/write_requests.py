"""A target's plan as the writes it takes (issue 13): one request per record, in the API's field names and
value forms (OPS-9), each with its idempotency key (``key_of``; recorded in ``state/outbox.py``) and the
baselines it sets once the target confirms it (CONF-5, Invariant 2).

- A create (``TargetPlan.creates`` and the values it carries, ``create_values``): the record as it is created,
  keyed by the target object and its source record, with the field it can be found again by (the catalog's
  ``lookup_field``) and that field's value. A field whose value is not written (too long, OPS-9) is left out.
- A record's updates (``TargetPlan.updates``, each field's ``api_value``): one request per record whatever the
  number of fields, keyed by the record and every field's old and new value: the same update planned again
  before an extract has read it back is the same write, and a later change of the same field is a new one.
- A deletion (``TargetPlan.deletes``, DEL-2/DEL-3): keyed by the record.

Baselines are named by the link's HubSpot id: a create in HubSpot learns it from the API's answer
(``hubspot_id`` None until then); so does the link a confirmed create records (``origin: sync``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from crm_pipelines.sync.deal_plan import STAGE_FIELD

HUBSPOT = "hubspot"
OWNER_PROPERTY = "hubspot_owner_id"
DYNAMICS_OWNER_FIELD, DYNAMICS_OWNER_BIND = "ownerid@odata.bind", "/systemusers({})"
# a record's type as a link names it (``state/links.py``), by the API object a create goes to
LINK_TYPES = {"contacts": "contact", "leads": "lead", "accounts": "account", "opportunities": "opportunity"}
# the type a link names a company's or deal's source record by, per CRM (contacts: Lead/Contact, the identity's)
SOURCE_TYPES = {("salesforce", "company"): "Account", ("dynamics", "company"): "account",
                ("salesforce", "deal"): "Opportunity", ("dynamics", "deal"): "opportunity"}
STANDARD_PIPELINE = "standard"  # the other CRM's only pipeline (no Salesforce record type to set)
# Dataverse's business-process steps of an open opportunity, as ``salesstage`` takes them; a closed one (Won,
# Lost) is closed by its own action after the create, not by a value
DYNAMICS_STEPS = {"Qualify": 0, "Develop": 1, "Propose": 2, "Close": 3}
# a Dataverse opportunity's closed stages -> won?: reached by the WinOpportunity / LoseOpportunity actions (a
# create goes in at the last step, then is closed: ``confirm["close"]``; a linked one is a ``close`` request)
DYNAMICS_CLOSED = {"Won": True, "Lost": False}
# a request: its key, what it does to which object, for what (``ref``), how a create is found again, the record
# as sent, and what it confirms (the baselines); as the outbox records it (``state/outbox.py``)
WRITE_COLUMNS = ("key", "operation", "object", "ref", "lookup_field", "lookup_value", "payload", "confirm")


def key_of(*parts: object) -> str:
    """A write's idempotency key: every part that makes it that write."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def target_owners(values: pd.DataFrame, target: str, owners: pd.DataFrame) -> pd.DataFrame:
    """``values`` (``field``, ``target_field``, ``api_value``) with each owner (HubSpot's ``hubspot_owner_id``,
    the form the plan compares owners in) as ``target``'s own user: ``owners`` matches them by email
    (``transform.fields.owner_map``). An owner without a user in the target is not written (None). Dataverse
    sets an owner through its navigation property bound to the user's row, not the lookup's value column."""
    if target == HUBSPOT or values.empty:
        return values
    out = values.copy()
    is_owner = out["field"].astype(str).eq(OWNER_PROPERTY).to_numpy()
    if not is_owner.any():
        return out
    known = owners.dropna(subset=["hubspot_owner_id", f"{target}_id"])
    users = dict(zip(known["hubspot_owner_id"].astype(str), known[f"{target}_id"].astype(str), strict=True))
    found = [users.get(str(v)) for v in out.loc[is_owner, "api_value"].tolist()]
    if target == "dynamics":
        found = [None if u is None else DYNAMICS_OWNER_BIND.format(u) for u in found]
        out.loc[is_owner, "target_field"] = DYNAMICS_OWNER_FIELD
    out["api_value"] = out["api_value"].astype(object)
    out.loc[is_owner, "api_value"] = pd.Series(found, index=out.index[is_owner], dtype=object)
    return out


def sync_key(source_crm: object, source_id: object) -> str:
    """The key a create writes into a ``sync_key`` lookup field (``catalog.py``): its source record's."""
    return f"{source_crm}:{source_id}"


def deal_stage(target: str, pipeline: object, stage: object, new_pipeline: bool,
               hubspot_stages: Mapping[tuple[str, str], tuple[str, str]]) -> dict[str, object] | None:
    """A deal create's pipeline and stage as ``target``'s API takes them (DEAL-2/DEAL-3), or None when it cannot
    be written yet: in a HubSpot pipeline the plan creates first (DEAL-3, named by labels: ``hubspot_stages``,
    ``sync/pipeline_writes.stage_ids``) not there yet. A Dataverse opportunity planned closed is created at its
    last step, then closed by its action (``DYNAMICS_CLOSED``)."""
    if target == HUBSPOT:
        if not new_pipeline:
            return {"pipeline": str(pipeline), "dealstage": str(stage)}
        ids = hubspot_stages.get((str(pipeline), str(stage)))
        return None if ids is None else {"pipeline": ids[0], "dealstage": ids[1]}
    if target == "salesforce":
        fields: dict[str, object] = {"StageName": str(stage)}
        if str(pipeline) != STANDARD_PIPELINE:
            fields["RecordTypeId"] = str(pipeline)
        return fields
    step = DYNAMICS_STEPS["Close"] if str(stage) in DYNAMICS_CLOSED else DYNAMICS_STEPS.get(str(stage))
    return None if step is None else {"salesstage": step}


def create_requests(target: str, creates: pd.DataFrame, values: pd.DataFrame,
                    lookup: dict[str, str | None], source_types: Mapping[str, str] | None = None, *,
                    keyed: frozenset[str] = frozenset(),
                    hubspot_stages: Mapping[tuple[str, str], tuple[str, str]] | None = None,
                    hubspot_deal_stages: Mapping[str, str] | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``creates`` (``object``, ``identity_id``, ``source_crm``, ``source_id``, ``pipeline``, ``stage``),
    ``values`` (their carried values: ``source_id``, ``target_object``, ``field``, ``target_field``, ``value``,
    ``api_value``), ``lookup``: target object -> its lookup field; ``keyed``: the target objects whose lookup
    field takes the sync's key (``sync_key``), written with the create; ``source_types``: a contact create in
    HubSpot's source record -> its type (Lead, Contact; contact, lead), which the link it makes names;
    ``hubspot_stages``: see ``deal_stage``; ``hubspot_deal_stages``: a HubSpot deal created elsewhere -> its
    ``<pipeline>:<stage>`` (its stage's baseline, in HubSpot's terms as the merge compares it). Returns the
    requests (``WRITE_COLUMNS`` plus ``kind`` and ``identity_id``) and the creates not written yet (their
    ``object``, ``source_id`` and ``reason``); a create with no value to write is left out."""
    waiting = pd.DataFrame(columns=["object", "source_id", "reason"])
    if creates.empty or values.empty:
        return pd.DataFrame(columns=[*WRITE_COLUMNS, "kind", "identity_id"]), waiting
    # one pass over the values (a dict per record), not a pandas group per record: a first sync creates most
    # records, and each group's frame would cost more than its record's request
    sources = {str(r["source_id"]): r for r in creates.drop_duplicates("source_id").to_dict("records")}
    values = values[values["target_object"].notna().to_numpy() & values["source_id"].notna().to_numpy()]
    records: dict[tuple[str, str], tuple[dict, list]] = {}
    for obj, source_id, field, target_field, value, api_value in zip(
            values["target_object"].astype(str), values["source_id"].astype(str), values["field"].astype(str),
            values["target_field"].astype(str), values["value"], values["api_value"], strict=True):  # fmt: skip
        if _blank(api_value) or source_id not in sources:
            continue
        payload, baselines = records.setdefault((obj, source_id), ({}, []))
        payload[target_field] = api_value
        baselines.append({"field": field, "value": None if _blank(value) else str(value)})
    rows, later = [], []
    for (obj, source_id), (payload, baselines) in records.items():
        made = sources[source_id]
        if made["object"] == "deal":
            stage = deal_stage(target, made.get("pipeline"), made.get("stage"),
                               str(made.get("detail") or "").startswith("DEAL-3"), hubspot_stages or {})
            if stage is None:
                later.append({"object": "deal", "source_id": source_id, "reason": "its stage not writable yet"})
                continue
            payload.update(stage)
            # CONF-5: the stage it is created in is no user's change either
            hs_stage = f"{payload['pipeline']}:{payload['dealstage']}" if target == HUBSPOT \
                else (hubspot_deal_stages or {}).get(source_id)
            if hs_stage is not None:
                baselines.append({"field": STAGE_FIELD, "value": hs_stage})
        field = lookup.get(obj)
        if field is not None and obj in keyed:
            payload[field] = sync_key(made["source_crm"], source_id)
        other_crm = str(made["source_crm"]) if target == HUBSPOT else target
        if target != HUBSPOT:
            other_type = LINK_TYPES.get(obj, obj)
        elif made["object"] == "contact":
            other_type = (source_types or {}).get(source_id)
        else:
            other_type = SOURCE_TYPES.get((other_crm, str(made["object"])))
        confirm = {"kind": str(made["object"]), "other_crm": other_crm, "other_type": other_type,
                   "other_id": source_id if target == HUBSPOT else None, "identity_id": str(made["identity_id"]),
                   "hubspot_id": None if target == HUBSPOT else source_id, "baselines": baselines}
        if made["object"] == "deal" and target == "dynamics" and str(made.get("stage")) in DYNAMICS_CLOSED:
            confirm["close"] = DYNAMICS_CLOSED[str(made.get("stage"))]
        rows.append({
            "key": key_of(target, "create", obj, made["source_crm"], source_id),
            "operation": "create", "object": obj, "ref": f"{made['source_crm']}:{source_id}",
            "lookup_field": field, "lookup_value": None if field is None else payload.get(field),
            "payload": payload, "confirm": confirm, "kind": str(made["object"]),
            "identity_id": str(made["identity_id"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=[*WRITE_COLUMNS, "kind", "identity_id"]), pd.DataFrame(
        later, columns=["object", "source_id", "reason"])


def update_requests(target: str, updates: pd.DataFrame, objects: pd.Series,
                    hubspot_deal_stages: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``updates`` (``kind``, ``record_id``, ``hubspot_id``, ``source_crm``, ``field``, ``old``, ``new``,
    ``target_field``, ``api_value``) and the API object each writes to (aligned); ``hubspot_deal_stages``: a
    HubSpot deal -> its ``<pipeline>:<stage>``, the baseline of a stage written elsewhere (the plan's ``new``
    is in the target's terms, the merge compares HubSpot's). Returns ``WRITE_COLUMNS`` plus ``kind``: one
    request per record; a field whose value is not written (too long) is left out."""
    stages = hubspot_deal_stages or {}
    if updates.empty:
        return pd.DataFrame(columns=[*WRITE_COLUMNS, "kind"])
    frame = updates.assign(target_object=objects.to_numpy())
    stage = frame["field"].astype(str).eq(STAGE_FIELD).to_numpy()
    frame = frame[stage | np.array([not _blank(v) for v in frame["api_value"].tolist()], dtype=bool)]
    # one pass over the rows, sorted once (a record's fields in order: its key does not depend on the plan's
    # row order), not a pandas group per record
    frame = frame[frame["target_object"].notna().to_numpy() & frame["record_id"].notna().to_numpy()]
    frame = frame.astype({"field": str}).sort_values(["field"], kind="stable")
    records: dict[tuple[str, str], list[dict]] = {}
    for row in frame.to_dict("records"):
        records.setdefault((str(row["target_object"]), str(row["record_id"])), []).append(row)
    rows = []
    for (obj, record_id), fields in records.items():
        payload = {str(r["target_field"]): r["api_value"] for r in fields if r["field"] != STAGE_FIELD}
        staged = [r for r in fields if r["field"] == STAGE_FIELD]
        if staged:  # DEAL-2: a deal's pipeline and stage, "<pipeline>:<stage>" in the target's terms
            pipeline, _, name = str(staged[0]["new"]).partition(":")
            if target == "dynamics" and name in DYNAMICS_CLOSED:  # closed by its action: a request of its own
                rows.append(_close_request(obj, record_id, staged[0], DYNAMICS_CLOSED[name], stages))
                fields = [r for r in fields if r["field"] != STAGE_FIELD]
                if not fields:
                    continue
            else:
                written = deal_stage(target, pipeline, name, False, {}) or {}
                payload.update({k: v for k, v in written.items() if k != "RecordTypeId"})
        changes = [part for r in fields for part in (r["field"], str(r["old"]), str(r["new"]))]
        baselines = [{"kind": str(r["kind"]), "hubspot_id": str(r["hubspot_id"]),
                      "other_crm": str(r["source_crm"]) if target == HUBSPOT else target,
                      "field": r["field"], "value": _baseline_value(target, r, stages)} for r in fields]  # fmt: skip
        rows.append({
            "key": key_of(target, "update", obj, record_id, *changes),
            "operation": "update", "object": obj, "ref": record_id, "lookup_field": None,
            "lookup_value": None, "payload": payload, "confirm": {"baselines": baselines},
            "kind": str(fields[0]["kind"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=[*WRITE_COLUMNS, "kind"])


def _baseline_value(target: str, row: Mapping, stages: Mapping[str, str]) -> str | None:
    if _blank(row["new"]):
        return None
    if row["field"] == STAGE_FIELD and target != HUBSPOT:
        return stages.get(str(row["hubspot_id"]), str(row["new"]))
    return str(row["new"])


def _close_request(obj: str, record_id: str, row: Mapping, won: bool, stages: Mapping[str, str]) -> dict:
    """A linked Dataverse opportunity closed won or lost (its action), and the stage baseline that sets."""
    baseline = {"kind": str(row["kind"]), "hubspot_id": str(row["hubspot_id"]), "other_crm": "dynamics",
                "field": STAGE_FIELD, "value": _baseline_value("dynamics", row, stages)}
    return {"key": key_of("dynamics", "close", obj, record_id, row["old"], row["new"]), "operation": "close",
            "object": obj, "ref": record_id, "lookup_field": None, "lookup_value": None, "payload": {"won": won},
            "confirm": {"baselines": [baseline]}, "kind": str(row["kind"])}  # fmt: skip


def delete_requests(target: str, deletes: pd.DataFrame, objects: pd.Series) -> pd.DataFrame:
    """``deletes`` (``object``, ``record_id``, ``rule``; DEL-2/DEL-3) and the API object each is in (aligned):
    one request per record. Returns ``WRITE_COLUMNS`` plus ``kind``."""
    rows = [{"key": key_of(target, "delete", obj, record_id), "operation": "delete", "object": str(obj),
             "ref": str(record_id), "lookup_field": None, "lookup_value": None, "payload": {"rule": rule},
             "confirm": {"baselines": []}, "kind": str(kind)}
            for kind, record_id, rule, obj in zip(deletes["object"], deletes["record_id"], deletes["rule"], objects,
                                                  strict=True)]  # fmt: skip
    return pd.DataFrame(rows, columns=[*WRITE_COLUMNS, "kind"])


# an association kind's two HubSpot objects (v4 associations name both ends' types)
HUBSPOT_ENDS = {"contact_company": ("contacts", "companies"), "deal_contact": ("deals", "contacts"),
                "deal_company": ("deals", "companies")}
# a single-valued association (the plan's ``via``, ``<type>.<field>``) as the record's update writes it: the
# API object and the field (Dataverse: the navigation property bound to the other record's row)
LOOKUP_WRITES = {
    "Contact.AccountId": ("Contact", "AccountId", None),
    "Opportunity.AccountId": ("Opportunity", "AccountId", None),
    "contact.parentcustomerid": ("contacts", "parentcustomerid_account@odata.bind", "/accounts({})"),
    "lead.parentaccountid": ("leads", "parentaccountid@odata.bind", "/accounts({})"),
    "opportunity.parentcontactid": ("opportunities", "parentcontactid@odata.bind", "/contacts({})"),
    "opportunity.parentaccountid": ("opportunities", "parentaccountid@odata.bind", "/accounts({})"),
}
CONTACT_ROLE = "OpportunityContactRole"  # DEAL-6: a deal -> contact association in Salesforce is this record


def association_requests(target: str, associations: pd.DataFrame) -> pd.DataFrame:
    """``associations`` (``sync/plan.ASSOCIATION_COLUMNS``, DEAL-6): one request each, operation ``associate``,
    keyed by the pair and how it is written: HubSpot's object is ``<from>><to>`` (a v4 default association),
    payload the pair; Salesforce's ``OpportunityContactRole`` a record created; a lookup an update of the
    record's field (``LOOKUP_WRITES``). Returns ``WRITE_COLUMNS`` plus ``kind`` (the association kind)."""
    rows = []
    for kind, from_id, to_id, via in zip(associations["object"].astype(str), associations["from_id"].astype(str),
                                         associations["to_id"].astype(str), associations["via"].astype(str),
                                         strict=True):  # fmt: skip
        if target == HUBSPOT:
            ends = HUBSPOT_ENDS[kind]
            obj, ref, payload = f"{ends[0]}>{ends[1]}", from_id, {"from": from_id, "to": to_id}
        elif via == CONTACT_ROLE:
            obj, ref, payload = CONTACT_ROLE, from_id, {"OpportunityId": from_id, "ContactId": to_id}
        elif via in LOOKUP_WRITES:
            obj, name, bind = LOOKUP_WRITES[via]
            ref, payload = from_id, {name: bind.format(to_id) if bind else to_id}
        else:
            continue
        rows.append({"key": key_of(target, "associate", kind, via, from_id, to_id), "operation": "associate",
                     "object": obj, "ref": ref, "lookup_field": None, "lookup_value": None, "payload": payload,
                     "confirm": {"baselines": []}, "kind": kind})  # fmt: skip
    return pd.DataFrame(rows, columns=[*WRITE_COLUMNS, "kind"])

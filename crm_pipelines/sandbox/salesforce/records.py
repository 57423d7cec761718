"""Writes as a real org validates and derives them (FACTS §3, §12, §13).

Salesforce answers one record's write with the *first* problem it finds; the order here follows what a
user sees: unknown fields, read-only fields, then value types, then required fields, then references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.catalog import (
    ADDRESS_PREFIXES,
    COUNTRIES,
    LATEST,
    QUERY_ONLY,
    RECORD_TYPES,
    STAGES,
    STATES,
    Field,
    ObjectDef,
    label_of,
    sobject,
)
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import is_valid_id, make_id, to_18
from crm_pipelines.sandbox.salesforce.store import DELETED_AT, SalesforceStore
from crm_pipelines.sandbox.salesforce.values import now, parse_datetime, sf_datetime

# Close to the address syntax Salesforce accepts: one @, a dotted domain, no spaces or commas.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NEW_SEQUENCE_START = 200_000_000  # new records number above every seeded id (record_id < 8 * 10^7 at 10M people)
_COUNTRY_BY_TEXT = {**{c.lower(): c for c in COUNTRIES}, **{n.lower(): c for c, n in COUNTRIES.items()}}


def sobject_or_404(name: str) -> ObjectDef:
    o = sobject(name)
    if o is None:
        raise errors.not_found(f"The requested resource does not exist (sObject type '{name}' is not supported)")
    return o


@dataclass
class Org:
    store: SalesforceStore
    api_user_id: str
    state_country_picklists: bool = False

    # -- reading ------------------------------------------------------------------------------------
    def get_live(self, o: ObjectDef, record_id: str) -> dict[str, Any]:
        if not is_valid_id(record_id) or to_18(record_id)[:3] != o.key_prefix:
            raise errors.bad_record_path(record_id)
        row = self.store.get(o.name, to_18(record_id))
        if row is None:
            raise errors.not_found()
        if row["IsDeleted"]:
            raise errors.entity_deleted()
        return row

    # -- writing ------------------------------------------------------------------------------------
    def create(self, o: ObjectDef, body: dict[str, Any], user_id: str | None = None) -> str:
        self._check_writable_object(o)
        user = user_id or self.api_user_id
        values = self._coerce(o, body, update=False)
        for f in o.ordered:
            if f.name not in values and f.default is not None:
                values[f.name] = int(f.default) if isinstance(f.default, bool) else f.default
        if o.lookup("OwnerId") is not None and values.get("OwnerId") is None:
            values["OwnerId"] = user
        if o.name == "Opportunity" and values.get("RecordTypeId") is None:
            values["RecordTypeId"] = make_id("012", RECORD_TYPES["sales"].sequence)
        missing = [f.name for f in o.ordered if f.required and values.get(f.name) is None]
        if missing:
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING",
                                  f"Required fields are missing: [{', '.join(missing)}]", missing)
        self._check_rules(o, values, set(values))
        self._derive(o, values, None, set(values))
        self._check_unique(o, values, None)
        stamp = now()
        record_id = make_id(o.key_prefix, self.store.next_sequence(o.name, NEW_SEQUENCE_START))
        values.update(Id=record_id, IsDeleted=0, CreatedDate=stamp, CreatedById=user, LastModifiedDate=stamp,
                      LastModifiedById=user, SystemModstamp=stamp)
        if o.name == "Lead":
            values.setdefault("IsConverted", 0)
        self.store.insert(o.name, values)
        return record_id

    def update(self, o: ObjectDef, record_id: str, body: dict[str, Any], user_id: str | None = None) -> None:
        self._check_writable_object(o)
        current = self.get_live(o, record_id)
        if o.name == "Lead" and current["IsConverted"]:
            raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        values = self._coerce(o, body, update=True)
        nulled = [f.name for f in o.ordered if f.required and f.name in values and values[f.name] is None]
        if nulled:
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING",
                                  f"Required fields are missing: [{', '.join(nulled)}]", nulled)
        merged = {**current, **values}
        self._check_rules(o, merged, set(values))
        self._derive(o, merged, current, set(values))
        self._check_unique(o, merged, current["Id"])
        clock.check_after(parse_datetime(current["LastModifiedDate"]) if current.get("LastModifiedDate") else None)
        stamp = now()
        changed = {k: v for k, v in merged.items() if current.get(k) != v}
        changed.update(LastModifiedDate=stamp, LastModifiedById=user_id or self.api_user_id, SystemModstamp=stamp)
        self.store.update(o.name, current["Id"], changed)

    def convert_lead(self, lead: ObjectDef, lead_id: str, contact_id: str, account_id: str | None = None,
                     user_id: str | None = None) -> None:
        """What "Convert" does in Salesforce's UI for an existing Contact (and Account): the Lead is marked
        converted and points at them; it cannot be edited afterwards."""
        current = self.get_live(lead, lead_id)
        if current["IsConverted"]:
            raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        contact = sobject("Contact")
        assert contact is not None
        self.get_live(contact, contact_id)  # NOT_FOUND / ENTITY_IS_DELETED as Salesforce says
        stamp = now()
        self.store.update(lead.name, current["Id"], {
            "IsConverted": 1, "ConvertedContactId": contact_id, "ConvertedAccountId": account_id,
            "ConvertedDate": stamp[:10], "Status": "Closed - Converted", "LastModifiedDate": stamp,
            "LastModifiedById": user_id or self.api_user_id, "SystemModstamp": stamp,
        })  # fmt: skip

    def delete(self, o: ObjectDef, record_id: str) -> None:
        self._check_writable_object(o)
        current = self.get_live(o, record_id)
        stamp = now()
        self.store.update(o.name, current["Id"], {"IsDeleted": 1, DELETED_AT: stamp, "SystemModstamp": stamp})

    def upsert(self, o: ObjectDef, field_name: str, key: str, body: dict[str, Any]) -> tuple[str, bool]:
        """(id, created) for PATCH /sobjects/{type}/{externalIdField}/{value} (FACTS §8)."""
        f = o.lookup(field_name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise errors.not_found(f"Provided external ID field does not exist or is not accessible: {field_name}")
        if f.name == "Id":
            if not is_valid_id(key):
                raise errors.malformed_id(f"{o.label} ID", key, "Id")
            self.update(o, key, body)
            return to_18(key), False
        matches = self.store.find_by(o.name, f.name, key)
        if len(matches) > 1:  # 300 with the matching records' URLs (FACTS §3)
            raise SalesforceError(300, "MULTIPLE_RECORDS", f"{f.name} matches more than one record",
                                  [f"/services/data/v{LATEST}/sobjects/{o.name}/{m['Id']}" for m in matches])
        body = {k: v for k, v in body.items() if k.lower() != f.name.lower()}
        if matches:
            self.update(o, matches[0]["Id"], body)
            return matches[0]["Id"], False
        return self.create(o, {**body, f.name: key}), True

    # -- validation ---------------------------------------------------------------------------------
    def _check_writable_object(self, o: ObjectDef) -> None:
        if o.name in QUERY_ONLY:
            raise SalesforceError(405, "METHOD_NOT_ALLOWED",
                                  f"HTTP Method is not supported for this resource: entity type {o.name} does not "
                                  "support create, update or delete through the API")

    def _coerce(self, o: ObjectDef, body: dict[str, Any], *, update: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, raw in body.items():
            if key in ("attributes",) or (key.lower() == "id" and update):
                continue
            f = o.lookup(key, self.state_country_picklists)
            if f is None:
                raise errors.invalid_field_write(o.name, key)
            if not (f.updateable if update else f.createable):
                raise errors.not_writable(o.name, f.name, update)
            values[f.name] = self._value(o, f, raw)
        return values

    def _value(self, o: ObjectDef, f: Field, raw: Any) -> Any:
        if raw is None or raw == "":
            return None  # Salesforce stores an empty string as null
        if f.type == "boolean":
            if not isinstance(raw, bool):
                raise errors.json_parser_error(f"Cannot deserialize instance of boolean from {raw!r} for {f.name}")
            return int(raw)
        if f.type in ("int", "double", "currency", "percent"):
            try:
                number = float(raw) if not isinstance(raw, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is None:
                raise errors.json_parser_error(f"Cannot deserialize instance of {f.type} from {raw!r}")
            return int(number) if f.type == "int" else number
        if f.type == "date":
            if not isinstance(raw, str) or not _DATE.match(raw):
                raise errors.json_parser_error(f"Cannot deserialize value of type date from String {raw!r}")
            return raw
        if f.type == "datetime":
            try:
                return sf_datetime(parse_datetime(str(raw)))
            except ValueError:
                raise errors.json_parser_error(f"Cannot deserialize value of type datetime from {raw!r}") from None
        if f.type == "reference":
            text = str(raw)
            target_prefixes = {sobject(t).key_prefix: t for t in f.reference_to if sobject(t)}  # type: ignore[union-attr]
            if not is_valid_id(text) or to_18(text)[:3] not in target_prefixes:
                raise errors.malformed_id(label_for(f), text, f.name)
            target = target_prefixes[to_18(text)[:3]]
            if not self.store.exists(target, to_18(text)):
                raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY",
                                      "invalid cross reference id", [f.name])
            return to_18(text)
        text = raw if isinstance(raw, str) else str(raw)
        if f.length and len(text) > f.length:
            raise SalesforceError(400, "STRING_TOO_LONG",
                                  f"{label_for(f)}: data value too large: {text[:40]} (max length={f.length})",
                                  [f.name])
        if f.type == "email" and not _EMAIL.match(text):
            raise SalesforceError(400, "INVALID_EMAIL_ADDRESS", f"{label_for(f)}: invalid email address: {text}",
                                  [f.name])
        if f.type == "picklist" and f.restricted and text not in f.picklist:
            raise SalesforceError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"{label_for(f)}: bad value for restricted picklist field: {text}", [f.name])
        return text

    def _check_rules(self, o: ObjectDef, values: dict[str, Any], given: set[str]) -> None:
        if o.name == "Opportunity":
            rt = next((r for r in RECORD_TYPES.values()
                       if make_id("012", r.sequence) == values.get("RecordTypeId")), None)
            stage = values.get("StageName")
            if rt is None:
                raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY",
                                      "Record Type ID: this ID value isn't valid for the user: "
                                      f"{values.get('RecordTypeId')}", ["RecordTypeId"])
            if stage not in rt.stages:
                raise SalesforceError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                      f"Stage: bad value for restricted picklist field: {stage}", ["StageName"])
        if self.state_country_picklists:
            for prefix in ADDRESS_PREFIXES:
                if o.lookup(f"{prefix}Country") is not None:
                    _picklist_address(values, given, prefix)

    def _derive(self, o: ObjectDef, values: dict[str, Any], current: dict[str, Any] | None, given: set[str]) -> None:
        """Server-maintained fields: compound names, and what an Opportunity's stage implies."""
        if o.lookup("LastName") is not None:
            values["Name"] = " ".join(p for p in (values.get("FirstName"), values.get("LastName")) if p)
        if o.name == "Opportunity":
            stage = STAGES[values["StageName"]]
            stage_changed = current is None or current.get("StageName") != values["StageName"]
            # A new stage brings its default probability and forecast category unless the caller set them.
            if stage_changed and "Probability" not in given:
                values["Probability"] = float(stage.probability)
            if stage_changed and "ForecastCategoryName" not in given:
                values["ForecastCategoryName"] = stage.forecast
            values["IsClosed"], values["IsWon"] = int(stage.closed), int(stage.won)
            amount, prob = values.get("Amount"), values.get("Probability")
            values["ExpectedRevenue"] = None if amount is None or prob is None else round(amount * prob / 100, 2)
        if o.name == "Task":
            values["IsClosed"] = int(values.get("Status") == "Completed")

    def _check_unique(self, o: ObjectDef, values: dict[str, Any], own_id: str | None) -> None:
        for f in o.ordered:
            if not f.unique or values.get(f.name) is None:
                continue
            clash = [r for r in self.store.find_by(o.name, f.name, values[f.name]) if r["Id"] != own_id]
            if clash:
                raise SalesforceError(400, "DUPLICATE_VALUE",
                                      f"duplicate value found: {f.name} duplicates value on record with id: "
                                      f"{clash[0]['Id']}", [f.name])


def _integrity(what: str, field: str) -> SalesforceError:
    plural = "countries" if what == "country" else "states"
    return SalesforceError(
        400, "FIELD_INTEGRITY_EXCEPTION",
        f"There's a problem with this {what}, even though it may appear correct. Please select a "
        f"{what}{'/territory' if what == 'country' else ''} from the list of valid {plural}.", [field])


def _picklist_address(values: dict[str, Any], given: set[str], prefix: str) -> None:
    """With picklists on, the text field and its code must name the same entry; each fills in the other."""
    country, country_code = f"{prefix}Country", f"{prefix}CountryCode"
    state, state_code = f"{prefix}State", f"{prefix}StateCode"
    if not {country, country_code, state, state_code} & given:
        return  # an edit elsewhere on the record leaves its address alone
    code = values.get(country_code) if country_code in given or country not in given else None
    text = values.get(country)
    if text is not None and (code is None or country in given):
        from_text = _COUNTRY_BY_TEXT.get(str(text).lower())
        if from_text is None or (code is not None and from_text != code):
            raise _integrity("country", country)
        code = from_text
    values[country_code], values[country] = code, COUNTRIES.get(code) if code else None
    states = STATES.get(code or "", {})
    s_code = values.get(state_code) if state_code in given or state not in given else None
    s_text = values.get(state)
    if s_code is not None and s_code not in states:
        raise _integrity("state", state_code)
    if s_text is not None and (s_code is None or state in given):
        by_text = {**{c.lower(): c for c in states}, **{n.lower(): c for c, n in states.items()}}
        from_text = by_text.get(str(s_text).lower())
        if states and (from_text is None or (s_code is not None and from_text != s_code)):
            raise _integrity("state", state)
        s_code = from_text
    values[state_code] = s_code
    values[state] = states.get(s_code) if s_code else s_text


def label_for(f: Field) -> str:
    return label_of(f)

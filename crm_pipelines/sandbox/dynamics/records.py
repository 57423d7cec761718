"""Writing tables: create, update, upsert, delete, ``@odata.bind`` and the bulk messages (FACTS §A, §D).

Payload keys are validated against the catalog the way Dataverse does: unknown properties, direct writes of
lookup values and out-of-range option values are refused with the platform's messages; read-only system
columns are ignored. Every write bumps ``modifiedon`` and takes a new row version (the ETag).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, BY_SET, TEXT_TYPES, Attribute, Table
from crm_pipelines.sandbox.dynamics.messages import ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.odata import iso, parse_datetime, parse_prefer, parse_select, split_top_level
from crm_pipelines.sandbox.dynamics.store import DynamicsStore, target_column

VALIDATION = "0x80044331"  # a value outside an attribute's range or length
_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
_ENTITY_REF = re.compile(r"(?:^|/)([A-Za-z_]+)\(([^)]*)\)$")


def now_iso() -> str:
    return iso(clock.now())


def as_guid(text: str) -> str | None:
    m = _GUID.match(text.strip())
    return m.group(1).lower() if m else None


@dataclass(frozen=True)
class Key:
    """How a URL addresses a row: by primary key, or by an alternate key's values."""

    record_id: str | None = None
    alternate: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.record_id:
            return self.record_id
        return ",".join(f"{k}:{v}" for k, v in (self.alternate or {}).items())


def parse_key(table: Table, text: str) -> Key:
    guid = as_guid(text)
    if guid:
        return Key(record_id=guid)
    values: dict[str, Any] = {}
    for part in split_top_level(text):
        name, eq, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not eq or name not in table.by_name:
            raise errors.bad_request(f"Invalid key '{text}' for entity set '{table.entity_set}'.",
                                     errors.PROPERTY_NOT_FOUND)
        if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
            values[name] = raw[1:-1].replace("''", "'")  # OData doubles quotes inside literals
        elif raw.lstrip("-").isdigit():
            values[name] = int(raw)
        else:
            values[name] = as_guid(raw) or raw
    if tuple(sorted(values)) not in {tuple(sorted(k)) for k in table.alternate_keys}:
        raise errors.bad_request(
            f"The key attribute(s) {', '.join(values)} are not a defined alternate key of '{table.logical_name}'.",
            errors.PROPERTY_NOT_FOUND,
        )
    return Key(alternate=values)


class Writer:
    def __init__(self, store: DynamicsStore, api_url: str, default_owner: Callable[[], str | None],
                 render: Callable[[Table, dict[str, Any], ApiRequest], dict[str, Any]]) -> None:
        self.store = store
        self.api_url = api_url
        self.default_owner = default_owner
        self.render = render  # a row as returned under Prefer: return=representation

    def entity_url(self, table: Table, record_id: str) -> str:
        return f"{self.api_url}/{table.entity_set}({record_id})"

    # -- lookups ------------------------------------------------------------------------------------------
    def find(self, table: Table, key: Key) -> dict[str, Any] | None:
        if key.record_id:
            return self.store.get(table, key.record_id)
        rows = self.store.find_by(table, key.alternate or {})
        if len(rows) > 1:  # the key is not unique in seeded data (duplicates are part of the universe)
            raise errors.bad_request(f"More than one {table.logical_name} matches the key {key.describe()}.",
                                     errors.DUPLICATE_KEY)
        return rows[0] if rows else None

    # -- payload -> columns ----------------------------------------------------------------------------------
    def columns_from(self, table: Table, body: Any, existing: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key.endswith("@odata.bind"):
                self._bind(table, key[: -len("@odata.bind")], value, out)
                continue
            if "@" in key:  # @odata.type, @odata.id and other annotations carry no column value
                continue
            attr = table.by_name.get(key)
            if attr is None:
                if key in table.by_column:  # `_x_value`: lookups are set through navigation properties
                    raise errors.bad_request(
                        "CRM do not support direct update of Entity Reference properties, "
                        "Use Navigation properties instead.", errors.PROPERTY_NOT_FOUND)
                raise errors.invalid_property(key, table.logical_name)
            if attr.is_lookup:
                raise errors.bad_request(
                    f"An undeclared property '{key}' which only has property annotations in the payload but no "
                    "property value was found in the payload. In OData, only declared navigation properties and "
                    "declared named streams can be represented as properties without values.",
                    errors.PROPERTY_NOT_FOUND)
            if attr.read_only:
                continue
            if attr.name == table.primary_id and existing is not None:
                continue
            out[attr.column] = self._convert(table, attr, value)
        self._state_and_status(table, out, existing)
        return out

    def _bind(self, table: Table, nav_name: str, value: Any, out: dict[str, Any]) -> None:
        nav = table.nav(nav_name)
        if nav is None:
            raise errors.bad_request(
                f"An undeclared property '{nav_name}' which only has property annotations in the payload but no "
                "property value was found in the payload. In OData, only declared navigation properties and "
                "declared named streams can be represented as properties without values.",
                errors.PROPERTY_NOT_FOUND)
        m = _ENTITY_REF.search(str(value or ""))
        target = BY_LOGICAL[nav.target]
        if not m or m.group(1) != target.entity_set:
            raise errors.bad_request(f"Invalid value '{value}' for '{nav_name}@odata.bind': expected "
                                     f"/{target.entity_set}(<id>).")
        row = self.find(target, parse_key(target, m.group(2)))
        if row is None:
            raise errors.not_found(target.logical_name, m.group(2))
        attr = table.by_name[nav.attribute]
        out[attr.column] = row[target.primary_id]
        if (col := target_column(attr)) is not None:
            out[col] = nav.target

    def _convert(self, table: Table, attr: Attribute, value: Any) -> Any:
        if value is None:
            return None
        t = attr.type

        def wrong(expected: str) -> errors.DataverseError:
            return errors.bad_request(
                f"Cannot convert the literal '{value}' to the expected type '{expected}'.",
                errors.PROPERTY_NOT_FOUND)

        if t in TEXT_TYPES:
            if not isinstance(value, str):
                raise wrong("Edm.String")
            if attr.max_length and len(value) > attr.max_length:
                raise errors.bad_request(
                    f"A validation error occurred. The length of the '{attr.name}' attribute of the "
                    f"'{table.logical_name}' entity exceeded the maximum allowed length of '{attr.max_length}'.",
                    VALIDATION)
            return value
        if t in ("Integer", "BigInt", "Picklist", "State", "Status"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong("Edm.Int32")
            if attr.options and attr.label(value) is None:
                raise errors.bad_request(
                    f"A validation error occurred. The value {value} of '{attr.name}' on record of type "
                    f"'{table.logical_name}' is outside the valid range.", VALIDATION)
            return value
        if t in ("Money", "Decimal", "Double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong("Edm.Decimal")
            return float(value)
        if t == "Boolean":
            if not isinstance(value, bool):
                raise wrong("Edm.Boolean")
            return int(value)
        if t == "Uniqueidentifier":
            guid = as_guid(str(value))
            if guid is None:
                raise wrong("Edm.Guid")
            return guid
        if t == "DateTime":
            try:
                if attr.date_only:
                    return dt.date.fromisoformat(str(value)[:10]).isoformat()
                return iso(parse_datetime(str(value)))
            except ValueError:
                raise wrong(attr.odata_type) from None
        return value

    def _state_and_status(self, table: Table, out: dict[str, Any], existing: dict[str, Any] | None) -> None:
        status_attr = table.by_name.get("statuscode")
        if status_attr is None:
            return
        state = out.get("statecode", existing["statecode"] if existing else 0)
        if "statuscode" in out and out["statuscode"] is not None:
            option = next(o for o in status_attr.options if o.value == out["statuscode"])
            if "statecode" not in out:
                out["statecode"] = state = option.state
            if option.state != state:
                label = table.by_name["statecode"].label(state)
                raise errors.bad_request(
                    f"{out['statuscode']} is not a valid status code for state code "
                    f"{table.schema_name}State.{label} on {table.logical_name}.", errors.INVALID_STATUS)
        elif "statecode" in out or existing is None:
            out["statecode"] = state
            out["statuscode"] = next(o.value for o in status_attr.options if o.state == state)
        if table.logical_name == "opportunity":
            _refuse_opportunity_close(table, out, existing)

    # -- single-row operations ---------------------------------------------------------------------------
    def insert(self, table: Table, values: dict[str, Any], record_id: str | None = None) -> str:
        record_id = record_id or values.get(table.primary_id) or str(uuid.uuid4())
        if self.store.exists(table, record_id):
            raise errors.duplicate(precondition=False)
        now = now_iso()
        row = {**values, table.primary_id: record_id, "createdon": now, "modifiedon": now,
               "versionnumber": self.store.next_versions()[0]}
        if "ownerid" in table.by_name and row.get("_ownerid_value") is None:
            row["_ownerid_value"] = self.default_owner()
        if "fullname" in table.by_name:
            row["fullname"] = _fullname(row.get("firstname"), row.get("lastname"))
        self.store.insert(table, row)
        return record_id

    def modify(self, table: Table, existing: dict[str, Any], values: dict[str, Any]) -> None:
        clock.check_after(parse_datetime(existing["modifiedon"]) if existing.get("modifiedon") else None)
        changes = {**values, "modifiedon": now_iso(), "versionnumber": self.store.next_versions()[0]}
        if "fullname" in table.by_name and ("firstname" in values or "lastname" in values):
            merged = {**existing, **values}
            changes["fullname"] = _fullname(merged.get("firstname"), merged.get("lastname"))
        self.store.update(table, existing[table.primary_id], changes)

    def remove(self, table: Table, record_id: str) -> bool:
        return self.store.delete(table, record_id, self.store.next_versions()[0], now_iso())

    def _answer(self, table: Table, record_id: str, req: ApiRequest, created: bool) -> ApiResponse:
        headers = {"OData-EntityId": self.entity_url(table, record_id)}
        if parse_prefer(req.header("prefer")).return_representation:
            row = self.store.get(table, record_id)
            assert row is not None
            body = self.render(table, row, req)
            headers["ETag"] = body["@odata.etag"]
            return ApiResponse(201 if created else 200, body, headers)
        return ApiResponse(204, None, headers)

    def create(self, table: Table, req: ApiRequest) -> ApiResponse:
        parse_select(table, req.query.get("$select"))
        values = self.columns_from(table, req.json(), None)
        with self.store.transaction():
            record_id = self.insert(table, values)
        return self._answer(table, record_id, req, True)

    def patch(self, table: Table, key: Key, req: ApiRequest) -> ApiResponse:
        """Update, or upsert when no ``If-Match`` forbids creating (FACTS §D)."""
        if_match, if_none_match = req.header("if-match"), req.header("if-none-match")
        existing = self.find(table, key)
        if existing is None:
            if if_match:
                raise errors.not_found(table.logical_name, key.describe())
            values = self.columns_from(table, req.json(), None)
            if key.alternate:
                for name, v in key.alternate.items():
                    values.setdefault(table.by_name[name].column, v)
            with self.store.transaction():
                record_id = self.insert(table, values, key.record_id)
            return self._answer(table, record_id, req, True)
        if if_none_match == "*":
            raise errors.duplicate()
        if if_match and if_match != "*" and if_match != f'W/"{existing["versionnumber"]}"':
            raise errors.version_mismatch()
        values = self.columns_from(table, req.json(), existing)
        with self.store.transaction():
            self.modify(table, existing, values)
        return self._answer(table, existing[table.primary_id], req, False)

    def delete(self, table: Table, key: Key, req: ApiRequest) -> ApiResponse:
        existing = self.find(table, key)
        if existing is None:
            raise errors.not_found(table.logical_name, key.describe())
        if_match = req.header("if-match")
        if if_match and if_match != "*" and if_match != f'W/"{existing["versionnumber"]}"':
            raise errors.version_mismatch()
        self.remove(table, existing[table.primary_id])
        return ApiResponse(204)

    def put_property(self, table: Table, key: Key, prop: str, req: ApiRequest, clear: bool) -> ApiResponse:
        existing = self.find(table, key)
        if existing is None:
            raise errors.not_found(table.logical_name, key.describe())
        body = {prop: None} if clear else {prop: req.json().get("value")}
        values = self.columns_from(table, body, existing)
        self.modify(table, existing, values)
        return ApiResponse(204)

    # -- bulk messages -------------------------------------------------------------------------------------
    def _targets(self, table: Table, req: ApiRequest) -> list[dict[str, Any]]:
        body = req.json()
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list) or not targets:
            raise errors.bad_request("Targets must be a non-empty collection of entities.")
        for t in targets:
            kind = t.get("@odata.type") if isinstance(t, dict) else None
            if kind not in (None, table.entity_type, table.entity_type.removeprefix("Microsoft.Dynamics.CRM.")):
                raise errors.bad_request(f"Targets of {table.entity_set} must be of type {table.entity_type}.")
        return targets

    def create_multiple(self, table: Table, req: ApiRequest) -> ApiResponse:
        targets = self._targets(table, req)
        with self.store.transaction():  # all or nothing, as the message is
            ids = [self.insert(table, self.columns_from(table, t, None)) for t in targets]
        return ApiResponse(200, {"@odata.context": f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM."
                                                   "CreateMultipleResponse", "Ids": ids})

    def update_multiple(self, table: Table, req: ApiRequest) -> ApiResponse:
        targets = self._targets(table, req)
        with self.store.transaction():
            for t in targets:
                record_id = as_guid(str(t.get(table.primary_id) or ""))
                if record_id is None:
                    raise errors.bad_request(f"Each target needs its {table.primary_id}.")
                existing = self.store.get(table, record_id)
                if existing is None:
                    raise errors.not_found(table.logical_name, record_id)
                self.modify(table, existing, self.columns_from(table, t, existing))
        return ApiResponse(204)

    def upsert_multiple(self, table: Table, req: ApiRequest) -> ApiResponse:
        targets = self._targets(table, req)
        results = []
        with self.store.transaction():
            for t in targets:
                ref = str(t.get("@odata.id") or "")
                m = _ENTITY_REF.search(ref)
                if m:
                    key = parse_key(table, m.group(2))
                elif t.get(table.primary_id):
                    key = Key(record_id=as_guid(str(t[table.primary_id])))
                else:
                    raise errors.bad_request("Each target needs @odata.id or its primary key.")
                existing = self.find(table, key)
                if existing is None:
                    values = self.columns_from(table, t, None)
                    for name, v in (key.alternate or {}).items():
                        values.setdefault(table.by_name[name].column, v)
                    record_id, created = self.insert(table, values, key.record_id), True
                else:
                    self.modify(table, existing, self.columns_from(table, t, existing))
                    record_id, created = existing[table.primary_id], False
                results.append({"RecordCreated": created,
                                "Target": {"@odata.type": f"#{table.entity_type}", table.primary_id: record_id}})
        return ApiResponse(200, {"@odata.context": f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM."
                                                   "UpsertMultipleResponse", "Results": results})

    def bulk_delete(self, req: ApiRequest) -> ApiResponse:
        """BulkDelete runs as an asynchronous job in Dataverse; the sandbox finishes it before answering."""
        body = req.json()
        queries = body.get("QuerySet") if isinstance(body, dict) else None
        if not isinstance(queries, list) or not queries:
            raise errors.bad_request("QuerySet must contain at least one QueryExpression.")
        with self.store.transaction():
            for q in queries:
                table = BY_LOGICAL.get(str(q.get("EntityName", "")))
                if table is None:
                    raise errors.bad_request(f"The entity '{q.get('EntityName')}' does not exist.")
                for record_id in self._matching_ids(table, q.get("Criteria") or {}):
                    self.remove(table, record_id)
        return ApiResponse(200, {"@odata.context": f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM."
                                                   "BulkDeleteResponse", "JobId": str(uuid.uuid4())})

    def _matching_ids(self, table: Table, criteria: dict[str, Any]) -> list[str]:
        where, params = [], []
        for cond in criteria.get("Conditions") or []:
            attr = table.by_name.get(str(cond.get("AttributeName", "")))
            if attr is None:
                raise errors.no_property(str(cond.get("AttributeName")), table.logical_name)
            values = [v.get("Value") if isinstance(v, dict) else v for v in cond.get("Values") or []]
            op = str(cond.get("Operator", "")).lower()
            if op == "in" and values:
                where.append(f"{attr.column} IN ({','.join('?' * len(values))})")
            elif op == "equal" and len(values) == 1:
                where.append(f"{attr.column} = ?")
            else:
                raise errors.bad_request(f"Condition operator '{cond.get('Operator')}' is not supported here.")
            params += [str(v).lower() if attr.type == "Uniqueidentifier" else v for v in values]
        joiner = " OR " if str(criteria.get("FilterOperator", "And")).lower() == "or" else " AND "
        sql = f"SELECT {table.primary_id} FROM {table.entity_set} WHERE {joiner.join(where) or '1=1'}"
        return [r[0] for r in self.store.db.execute(sql, params)]


def _refuse_opportunity_close(table: Table, out: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Won and Lost are reached only through WinOpportunity / LoseOpportunity (sandbox/dynamics/close.py): a
    create, update or single-property write that would set them is refused as the platform refuses it
    (``CannotUseOpportunitySetStateMessage``; its text as Dataverse answers an update to won). Reopening (state
    Open) stays a plain update, and re-sending the state a closed row already has changes nothing."""
    state = out.get("statecode")
    if state is None or state == 0:
        return
    if existing is not None and (existing["statecode"], existing["statuscode"]) == (
            state, out.get("statuscode", existing["statuscode"])):
        return
    label = (table.by_name["statecode"].label(state) or str(state)).lower()
    raise errors.bad_request(
        f"This message can not be used to set the state of opportunity to {label}. In order to set state of "
        f"opportunity to {label}, use the {label} message instead.", errors.OPPORTUNITY_SET_STATE)


def _fullname(first: str | None, last: str | None) -> str | None:
    name = f"{first or ''} {last or ''}".strip()
    return name or None


def table_for_set(name: str) -> Table | None:
    return BY_SET.get(name)

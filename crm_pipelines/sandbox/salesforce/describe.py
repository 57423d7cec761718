"""describeGlobal and sObject describe bodies, generated from the catalog (FACTS §11)."""

from __future__ import annotations

from typing import Any

from crm_pipelines.sandbox.salesforce.catalog import (
    PLURALS,
    QUERY_ONLY,
    RECORD_TYPES,
    SOBJECTS,
    STAGES,
    Field,
    ObjectDef,
    label_of,
)
from crm_pipelines.sandbox.salesforce.ids import make_id


def _urls(o: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{o.name}"
    return {"rowTemplate": base + "/{ID}", "defaultValues": base + "/defaultValues?recordTypeId&fields",
            "describe": base + "/describe", "sobject": base}


def object_summary(o: ObjectDef, version: str) -> dict[str, Any]:
    writable = o.name not in QUERY_ONLY
    return {
        "activateable": False, "createable": writable, "custom": False, "customSetting": False,
        "deletable": writable, "deprecatedAndHidden": False, "feedEnabled": False, "hasSubtypes": False,
        "isSubtype": False, "keyPrefix": o.key_prefix, "label": o.label,
        "labelPlural": PLURALS.get(o.name, o.label + "s"), "layoutable": writable, "mergeable": o.name in (
            "Lead", "Contact", "Account"), "mruEnabled": writable, "name": o.name, "queryable": True,
        "replicateable": True, "retrieveable": True, "searchable": writable, "triggerable": writable,
        "undeletable": writable, "updateable": writable, "urls": _urls(o, version),
    }


def describe_global(version: str) -> dict[str, Any]:
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [object_summary(o, version) for o in SOBJECTS.values()]}


def _picklist(f: Field) -> list[dict[str, Any]]:
    return [{"active": True, "defaultValue": v == f.default, "label": v, "validFor": None, "value": v}
            for v in f.picklist]


def describe_field(o: ObjectDef, f: Field) -> dict[str, Any]:
    writable = o.name not in QUERY_ONLY
    numeric = f.type in ("currency", "double", "percent")
    if f.compound:  # read-only, not filterable, sortable or groupable (FACTS §16)
        return {**_describe_plain(o, f, writable, numeric), "filterable": False, "sortable": False,
                "groupable": False, "aggregatable": False, "length": 0, "byteLength": 0, "soapType": "urn:address",
                "createable": False, "updateable": False, "defaultedOnCreate": False}
    return _describe_plain(o, f, writable, numeric)


def _describe_plain(o: ObjectDef, f: Field, writable: bool, numeric: bool) -> dict[str, Any]:
    return {
        "aggregatable": f.type not in ("textarea",), "autoNumber": False,
        "byteLength": f.length * 3 if f.sql_type.startswith("TEXT") else 0,
        "calculated": False, "caseSensitive": False, "createable": f.createable and writable,
        "custom": f.name.endswith("__c"), "defaultValue": f.default if not isinstance(f.default, bool) else None,
        "defaultedOnCreate": f.default is not None or f.name in ("Id", "OwnerId", "CreatedDate", "IsDeleted"),
        "digits": 9 if f.type == "int" else 0, "externalId": f.external_id, "filterable": f.type != "textarea",
        "groupable": not numeric and f.type != "textarea", "idLookup": f.name == "Id" or f.external_id,
        "label": label_of(f), "length": f.length if f.sql_type.startswith("TEXT") and f.type != "date" else 0,
        "name": f.name, "nameField": f.name == "Name", "nillable": f.nillable,
        "picklistValues": _picklist(f), "precision": 18 if numeric else 0,
        "referenceTo": list(f.reference_to), "relationshipName": f.relationship,
        "restrictedPicklist": f.restricted, "scale": 2 if numeric else 0, "soapType": f.soap_type,
        "sortable": f.type != "textarea", "type": f.type, "unique": f.unique,
        "updateable": f.updateable and writable,
        "polymorphicForeignKey": len(f.reference_to) > 1, "compoundFieldName": f.compound_name,
    }


def record_type_infos(o: ObjectDef, version: str) -> list[dict[str, Any]]:
    master = {"active": True, "available": True, "defaultRecordTypeMapping": o.name != "Opportunity",
              "developerName": "Master", "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
              "urls": {"layout": f"/services/data/v{version}/sobjects/{o.name}/describe/layouts/012000000000000AAA"}}
    if o.name != "Opportunity":
        return [master]
    infos = []
    for key, rt in RECORD_TYPES.items():
        rid = make_id("012", rt.sequence)
        infos.append({"active": True, "available": True, "defaultRecordTypeMapping": key == "sales",
                      "developerName": rt.developer_name, "master": False, "name": rt.name, "recordTypeId": rid,
                      "urls": {"layout": f"/services/data/v{version}/sobjects/Opportunity/describe/layouts/{rid}"}})
    return [*infos, {**master, "available": False}]


def describe(o: ObjectDef, version: str, picklists: bool = False) -> dict[str, Any]:
    body = object_summary(o, version)
    body.update({
        "childRelationships": [
            {"cascadeDelete": False, "childSObject": child.name, "field": f.name, "relationshipName": None}
            for child in SOBJECTS.values() for f in child.ordered if o.name in f.reference_to
        ],
        "fields": [describe_field(o, f) for f in o.visible(picklists)],
        "recordTypeInfos": record_type_infos(o, version),
        "compactLayoutable": True, "listviewable": None, "lookupLayoutable": None, "networkScopeFieldName": None,
        "searchLayoutable": True, "supportedScopes": [{"label": "All", "name": "everything"}],
    })
    return body


def stage_picklist_for(record_type_id: str) -> list[str]:
    for rt in RECORD_TYPES.values():
        if make_id("012", rt.sequence) == record_type_id:
            return list(rt.stages)
    return list(STAGES)

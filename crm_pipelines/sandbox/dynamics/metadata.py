"""``EntityDefinitions``: the table and column metadata the SDK and schema-discovery tools read (FACTS §A4-5).

Rendered from the catalog: each table's logical name, entity set, primary id/name, change-tracking flags;
its attributes with type, ``DateTimeBehavior`` and (when expanded) option sets; its alternate keys. The
metadata ``$filter`` is parsed by the same OData grammar and evaluated over these documents in Python.
"""

from __future__ import annotations

import uuid
from typing import Any

from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser

from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, LANGUAGE, TABLES, Attribute, Table
from crm_pipelines.sandbox.dynamics.messages import ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.odata import parse_expand

_TYPE_NAME = {"Uniqueidentifier": "UniqueidentifierType", "String": "StringType", "Memo": "MemoType",
              "Integer": "IntegerType", "BigInt": "BigIntType", "Money": "MoneyType", "Decimal": "DecimalType",
              "Double": "DoubleType", "Boolean": "BooleanType", "Picklist": "PicklistType", "State": "StateType",
              "Status": "StatusType", "Lookup": "LookupType", "Customer": "CustomerType", "Owner": "OwnerType",
              "DateTime": "DateTimeType"}
_CAST = {"Uniqueidentifier": "UniqueIdentifierAttributeMetadata", "String": "StringAttributeMetadata",
         "Memo": "MemoAttributeMetadata", "Integer": "IntegerAttributeMetadata", "BigInt": "BigIntAttributeMetadata",
         "Money": "MoneyAttributeMetadata", "Decimal": "DecimalAttributeMetadata",
         "Double": "DoubleAttributeMetadata", "Boolean": "BooleanAttributeMetadata",
         "Picklist": "PicklistAttributeMetadata", "State": "StateAttributeMetadata",
         "Status": "StatusAttributeMetadata", "Lookup": "LookupAttributeMetadata",
         "Customer": "LookupAttributeMetadata", "Owner": "LookupAttributeMetadata",
         "DateTime": "DateTimeAttributeMetadata"}
_NS = "Microsoft.Dynamics.CRM."


def label(text: str, *, managed: bool = True) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": LANGUAGE, "IsManaged": managed}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def _metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dynamics-sandbox:" + ":".join(parts)))


def _display(name: str) -> str:
    return name.replace("address1_", "Address 1: ").replace("_", " ").title()


def entity_document(table: Table) -> dict[str, Any]:
    return {
        "@odata.type": f"#{_NS}EntityMetadata",
        "MetadataId": table.metadata_id,
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "CollectionSchemaName": table.schema_name + ("s" if table.logical_name != "opportunity" else ""),
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "DisplayName": label(table.schema_name),
        "IsCustomEntity": False,
        "IsActivity": False,
        "IsValidForAdvancedFind": True,
        "TableType": "Standard",
        "OwnershipType": "UserOwned" if "ownerid" in table.by_name else "OrganizationOwned",
        # Change tracking is on for every served table and, once on, cannot be switched off (FACTS §G).
        "ChangeTrackingEnabled": True,
        "CanChangeTrackingBeEnabled": {"Value": True, "CanBeChanged": False,
                                       "ManagedPropertyLogicalName": "canchangetrackingbeenabled"},
    }


def attribute_document(table: Table, attr: Attribute, expand_options: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@odata.type": f"#{_NS}{_CAST[attr.type]}",
        "MetadataId": _metadata_id(table.logical_name, attr.name),
        "LogicalName": attr.name,
        # a custom column's schema name is the publisher prefix and name as its maker typed them
        "SchemaName": attr.name if attr.custom else attr.name.capitalize(),
        "EntityLogicalName": table.logical_name,
        "AttributeType": attr.type,
        "AttributeTypeName": {"Value": _TYPE_NAME[attr.type]},
        "DisplayName": label(_display(attr.name), managed=not attr.custom),
        "IsPrimaryId": attr.name == table.primary_id,
        "IsPrimaryName": attr.name == table.primary_name,
        "IsCustomAttribute": attr.custom,
        "IsManaged": not attr.custom,  # made in this org (an unmanaged customization), not shipped
        "IsValidForRead": True,
        "IsValidForCreate": not attr.read_only,
        "IsValidForUpdate": not attr.read_only and attr.name != table.primary_id,
        "RequiredLevel": {"Value": "SystemRequired" if attr.name == table.primary_id else "None",
                          "CanBeChanged": False, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
    }
    if attr.max_length:
        doc["MaxLength"] = attr.max_length
    if attr.type == "DateTime":
        doc["Format"] = "DateOnly" if attr.date_only else "DateAndTime"
        doc["DateTimeBehavior"] = {"Value": "DateOnly" if attr.date_only else "UserLocal"}
        doc["CanChangeDateTimeBehavior"] = {"Value": False, "CanBeChanged": False,
                                            "ManagedPropertyLogicalName": "canchangedatetimebehavior"}
    if attr.is_lookup:
        doc["Targets"] = list(attr.targets)
    if attr.options and expand_options:
        options = []
        for o in attr.options:
            option: dict[str, Any] = {"Value": o.value, "Label": label(o.label)}
            if o.state is not None:
                option["State"] = o.state
            options.append(option)
        doc["OptionSet"] = {"MetadataId": _metadata_id(table.logical_name, attr.name, "options"),
                            "Name": f"{table.logical_name}_{attr.name}", "IsGlobal": False,
                            "OptionSetType": attr.type if attr.type != "Picklist" else "Picklist",
                            "Options": options}
    return doc


def _project(doc: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return doc
    keep = {"@odata.type", "MetadataId", *select}
    return {k: v for k, v in doc.items() if k in keep or k in ("OptionSet", "Attributes")}


def _select(options: dict[str, str]) -> list[str] | None:
    value = options.get("$select")
    return [s.strip() for s in value.split(",")] if value else None


class Metadata:
    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def _table(self, key: str) -> Table:
        key = key.strip()
        if key.startswith("LogicalName="):
            name = key.split("=", 1)[1].strip().strip("'").replace("''", "'")
            table = BY_LOGICAL.get(name)
        else:
            table = next((t for t in TABLES if t.metadata_id == key.lower()), None)
        if table is None:
            raise errors.DataverseError(404, "0x80040217", f"Could not find entity with key '{key}'.")
        return table

    def _attributes(self, table: Table, cast: str | None, options: dict[str, str]) -> list[dict[str, Any]]:
        expand = {e.name: e.options for e in parse_expand(options.get("$expand"))}
        docs = [attribute_document(table, a, "OptionSet" in expand) for a in table.attributes]
        if cast:
            docs = [d for d in docs if d["@odata.type"] == f"#{cast}"]
        if options.get("$filter"):
            docs = [d for d in docs if evaluate(options["$filter"], d)]
        return [_project(d, _select(options)) for d in docs]

    def _entity(self, table: Table, options: dict[str, str]) -> dict[str, Any]:
        doc = _project(entity_document(table), _select(options))
        for item in parse_expand(options.get("$expand")):
            if item.name == "Attributes":
                doc["Attributes"] = self._attributes(table, None, item.options)
            elif item.name == "Keys":
                doc["Keys"] = self._keys(table)
            else:
                raise errors.no_property(item.name, "EntityMetadata")
        return doc

    def _keys(self, table: Table) -> list[dict[str, Any]]:
        return [{"@odata.type": f"#{_NS}EntityKeyMetadata", "MetadataId": _metadata_id(table.logical_name, *k),
                 "LogicalName": f"{table.logical_name}_{'_'.join(k)}_key", "KeyAttributes": list(k),
                 "EntityKeyIndexStatus": "Active", "EntityLogicalName": table.logical_name}
                for k in table.alternate_keys]

    def handle(self, req: ApiRequest, key: str | None, rest: list[str]) -> ApiResponse:
        """``EntityDefinitions[(key)][/Attributes[(LogicalName='x')][/<cast>]|/Keys]``."""
        context = f"{self.api_url}/$metadata#EntityDefinitions"
        if key is None:
            wanted = req.query.get("$filter")
            docs = [self._entity(t, req.query) for t in TABLES if not wanted or evaluate(wanted, entity_document(t))]
            return ApiResponse(200, {"@odata.context": context, "value": docs})
        table = self._table(key)
        if not rest:
            return ApiResponse(200, {"@odata.context": f"{context}/$entity", **self._entity(table, req.query)})
        if rest[0] == "Keys":
            return ApiResponse(200, {"@odata.context": f"{context}({table.metadata_id})/Keys",
                                     "value": self._keys(table)})
        name, _, attr_key = rest[0].partition("(")
        if name != "Attributes":
            raise errors.segment_not_found(rest[0])
        cast = rest[1] if len(rest) > 1 else None
        if cast and not cast.startswith(_NS):
            raise errors.segment_not_found(cast)
        if attr_key:
            logical = attr_key.rstrip(")").split("=", 1)[-1].strip("'")
            attr = table.by_name.get(logical)
            if attr is None or (cast and f"#{cast}" != f"#{_NS}{_CAST[attr.type]}"):
                raise errors.DataverseError(404, "0x80040217", f"Could not find attribute '{logical}'.")
            doc = attribute_document(table, attr, "OptionSet" in (req.query.get("$expand") or ""))
            return ApiResponse(200, {"@odata.context": f"{context}({table.metadata_id})/Attributes/$entity",
                                     **_project(doc, _select(req.query))})
        return ApiResponse(200, {"@odata.context": f"{context}({table.metadata_id})/Attributes"
                                                   + (f"/{cast}" if cast else ""),
                                 "value": self._attributes(table, cast, req.query)})


# -- a small $filter evaluator for metadata documents ------------------------------------------------------
_LEXER, _PARSER = ODataLexer(), ODataParser()


def evaluate(text: str, doc: dict[str, Any]) -> bool:
    try:
        tree = _PARSER.parse(_LEXER.tokenize(text))
    except Exception as e:
        raise errors.bad_request(f"Syntax error in $filter '{text}': {e}", errors.PROPERTY_NOT_FOUND) from None
    return bool(_eval(tree, doc))


def _eval(node: ast._Node, doc: dict[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        left = _eval(node.left, doc)
        return (left and _eval(node.right, doc)) if isinstance(node.op, ast.And) else (left or _eval(node.right, doc))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, doc)
    if isinstance(node, ast.Identifier):
        value = doc.get(node.name)
        return value.get("Value") if isinstance(value, dict) and "Value" in value else value
    if isinstance(node, ast.Attribute):  # e.g. CanChangeTrackingBeEnabled/Value
        owner = doc.get(getattr(node.owner, "name", ""))
        return owner.get(node.attr) if isinstance(owner, dict) else None
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.Boolean):
        return node.val.lower() == "true"
    if isinstance(node, ast.Integer):
        return int(node.val)
    if isinstance(node, ast.String | ast.GUID):
        return node.val
    if isinstance(node, ast.List):
        return [_eval(v, doc) for v in node.val]
    if isinstance(node, ast.Compare):
        left, right = _eval(node.left, doc), _eval(node.right, doc)
        if isinstance(left, str) and isinstance(right, str):  # metadata names compare case-insensitively
            left, right = left.lower(), right.lower()
        ops = {ast.Eq: lambda: left == right, ast.NotEq: lambda: left != right,
               ast.In: lambda: left in [r.lower() if isinstance(r, str) else r for r in right],
               ast.Gt: lambda: left > right, ast.Lt: lambda: left < right}
        fn = ops.get(type(node.comparator))
        if fn is None:
            raise errors.bad_request("This operator is not supported on metadata.")
        return fn()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Identifier) and len(node.args) == 2:
        hay, needle = _eval(node.args[0], doc), _eval(node.args[1], doc)
        if isinstance(hay, str) and isinstance(needle, str):
            fns = {"contains": hay.lower().__contains__, "startswith": hay.lower().startswith,
                   "endswith": hay.lower().endswith}
            if node.func.name in fns:
                return fns[node.func.name](needle.lower())
    raise errors.bad_request(f"The $filter expression '{type(node).__name__}' is not supported on metadata.")


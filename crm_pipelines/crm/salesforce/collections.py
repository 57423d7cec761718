"""Writes through sObject Collections: chunks of 200, ``allOrNone=false``, one outcome per input (FACTS §9).

Salesforce answers a well-formed collection call with 200 and a SaveResult per record in request order,
so one bad record never fails the others (OPS-6). Values are converted by ``values.to_salesforce`` against
the object's describe (OPS-9); a value that cannot be converted fails its own record before any call, and
text cut to a field's length is reported on the record's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from crm_pipelines.crm.errors import ApiError, TransientError
from crm_pipelines.crm.outcomes import WriteOutcome
from crm_pipelines.crm.salesforce.soql import Name
from crm_pipelines.crm.salesforce.values import Truncation, to_salesforce

if TYPE_CHECKING:
    from crm_pipelines.crm.salesforce.client import SalesforceClient

COLLECTION_MAX = 200
Operation = Literal["create", "update", "upsert", "delete"]
_CALLS = {"create": "POST", "update": "PATCH", "upsert": "PATCH", "delete": "DELETE"}


async def save(
    client: SalesforceClient,
    operation: Operation,
    obj: str,
    records: Sequence[dict[str, Any]],
    *,
    external_id_field: str | None = None,
    truncate: bool = True,
) -> list[WriteOutcome]:
    """create / update / upsert (by ``external_id_field``) / delete (records carry ``Id``), in input order."""
    if operation not in _CALLS:
        raise ValueError(f"unknown collection operation {operation!r}")
    if operation == "upsert" and not external_id_field:
        raise ValueError("upsert needs the external id field to match on")
    fields = (await client.describe(obj)).fields if operation != "delete" else {}
    outcomes: list[WriteOutcome] = []
    ready: list[tuple[int, dict[str, Any], tuple[Truncation, ...]]] = []
    for index, record in enumerate(records):
        try:
            body, cut = _prepare(operation, obj, record, fields, truncate)
        except (TypeError, ValueError) as error:
            outcomes.append(WriteOutcome(index, False, _id_of(record), code="INVALID_VALUE", message=str(error)))
            continue
        ready.append((index, body, cut))
    for offset in range(0, len(ready), COLLECTION_MAX):
        outcomes += await _chunk(client, operation, obj, ready[offset : offset + COLLECTION_MAX], external_id_field)
    return sorted(outcomes, key=lambda o: o.index)


def _id_of(record: dict[str, Any]) -> str | None:
    return next((str(v) for k, v in record.items() if k.lower() == "id" and v), None)


def _prepare(
    operation: str, obj: str, record: dict[str, Any], fields: dict, truncate: bool
) -> tuple[dict[str, Any], tuple[Truncation, ...]]:
    if operation == "delete":
        record_id = _id_of(record)
        if not record_id:
            raise ValueError("a delete needs the record's Id")
        return {"Id": record_id}, ()
    if operation == "update" and not _id_of(record):
        raise ValueError("an update needs the record's Id")
    if operation == "create" and _id_of(record):
        raise ValueError("a create cannot carry an Id")
    converted = to_salesforce(fields, {k: v for k, v in record.items() if k != "attributes"}, truncate=truncate)
    return {"attributes": {"type": obj}, **converted.body}, tuple(converted.truncated)


async def _chunk(
    client: SalesforceClient,
    operation: str,
    obj: str,
    chunk: list[tuple[int, dict[str, Any], tuple[Truncation, ...]]],
    external_id_field: str | None,
) -> list[WriteOutcome]:
    if not chunk:
        return []
    try:
        if operation == "delete":
            ids = ",".join(body["Id"] for _, body, _ in chunk)
            response = await client.call(
                "DELETE",
                "composite/sobjects",
                "DELETE /services/data/vXX.X/composite/sobjects",
                params={"ids": ids, "allOrNone": "false"},
            )
        else:
            path = "composite/sobjects"
            endpoint = f"{_CALLS[operation]} /services/data/vXX.X/composite/sobjects"
            if operation == "upsert":
                path += f"/{Name(obj)}/{Name(external_id_field or '')}"
                endpoint += "/{type}/{field}"
            response = await client.call(
                _CALLS[operation],
                path,
                endpoint,
                json={"allOrNone": False, "records": [body for _, body, _ in chunk]},
                replay_safe=operation != "create",  # a create sent twice makes two records
            )
    except TransientError:
        raise
    except ApiError as error:
        if error.status == 403 or error.status == 401:
            raise  # the org or the credentials refuse every call: defer, do not mark records failed
        # the call as a whole was refused (its shape, not a record): every record keeps the API's reason
        return [
            WriteOutcome(i, False, _id_of(body), code=error.code, message=error.api_message, truncated=cut)
            for i, body, cut in chunk
        ]
    results = response.data or []
    outcomes = []
    for (index, body, cut), result in zip(chunk, results, strict=False):
        if result.get("success"):
            outcomes.append(WriteOutcome(index, True, result.get("id"), result.get("created"), truncated=cut))
        else:
            errors = result.get("errors") or [{}]
            first = errors[0]
            outcomes.append(
                WriteOutcome(
                    index,
                    False,
                    result.get("id") or _id_of(body),
                    code=first.get("statusCode") or first.get("errorCode"),
                    message="; ".join(str(e.get("message", "")) for e in errors),
                    fields=tuple(first.get("fields") or ()),
                    truncated=cut,
                )
            )
    for index, body, _cut in chunk[len(results) :]:  # never expected: a result per record, in order
        outcomes.append(WriteOutcome(index, False, _id_of(body), code="NO_RESULT", message="no result returned"))
    return outcomes

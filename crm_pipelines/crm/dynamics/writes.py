"""Batch writes with one outcome per record (OPS-6) and values in Dataverse's form (OPS-9).

Inputs, by operation (``record`` holds Python values; :mod:`values` converts them):

- ``create``: ``{"record": {...}, "id": optional GUID}`` — every create carries a GUID chosen before the call
  (the caller's idempotency key, or a fresh one), so sending it again can never make a second row;
- ``update``: ``{"id": GUID, "record": {...}}`` — ``If-Match: *``, so a missing row is an error, not a create;
- ``upsert``: ``{"id": GUID}`` or ``{"key": {alternate key}}``, with ``"record"``;
- ``delete``: ``{"id": GUID}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crm_pipelines.crm.dynamics.batch import BATCH_MAX, BatchAnswer, BatchRequest
from crm_pipelines.crm.dynamics.entities import primary_key
from crm_pipelines.crm.dynamics.odata import entity_path, guid
from crm_pipelines.crm.dynamics.values import to_web_api
from crm_pipelines.crm.outcomes import WriteOutcome

if TYPE_CHECKING:
    from crm_pipelines.crm.dynamics.client import DynamicsClient

RECORD_NOT_FOUND = "0x80040217"  # FACTS §E
DUPLICATE_KEY = "0x80040237"  # FACTS §E
OPERATIONS = {"create", "update", "upsert", "delete"}


class BatchWriter:
    def __init__(self, client: DynamicsClient) -> None:
        self.client = client

    async def write(self, operation: str, entity_set: str, inputs: Sequence[dict[str, Any]]) -> list[WriteOutcome]:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown write operation {operation!r}")
        pk = primary_key(entity_set)
        outcomes: dict[int, WriteOutcome] = {}
        prepared: list[tuple[int, BatchRequest, str | None, bool, tuple[str, ...]]] = []
        for index, item in enumerate(inputs):
            try:
                prepared.append((index, *self._request(operation, entity_set, pk, item)))
            except (ValueError, TypeError, KeyError) as error:  # a bad input fails alone, before any call
                outcomes[index] = WriteOutcome(index, False, item.get("id"), code="INVALID_INPUT", message=str(error))
        pending = prepared
        while pending:
            chunk, pending = pending[:BATCH_MAX], pending[BATCH_MAX:]
            answers = await self.client.send_batch([request for _, request, *_ in chunk])
            # one change set per request, so the n-th answer belongs to the n-th request; Content-ID agrees
            by_id = {a.content_id: a for a in answers if a.content_id}
            unanswered = []
            for n, (index, request, record_id, generated, truncated) in enumerate(chunk, start=1):
                answer = by_id.get(str(n)) or (answers[n - 1] if n <= len(answers) and not by_id else None)
                if answer is None:  # the batch stopped early (continue-on-error not honoured): send again
                    unanswered.append((index, request, record_id, generated, truncated))
                    continue
                outcomes[index] = _outcome(operation, index, answer, record_id, generated, truncated, pk)
            if unanswered and len(unanswered) == len(chunk):
                raise RuntimeError("the $batch answer held no outcome for any of its requests")
            pending = unanswered + pending
        return [outcomes[i] for i in sorted(outcomes)]

    def _request(
        self, operation: str, entity_set: str, pk: str, item: dict[str, Any]
    ) -> tuple[BatchRequest, str | None, bool, tuple[str, ...]]:
        api = self.client.api_url
        converted = to_web_api(entity_set, item.get("record") or {})
        truncated = tuple(t.column for t in converted.truncated)
        body = converted.body
        if operation == "create":
            generated = item.get("id") is None
            record_id = guid(item["id"]) if not generated else str(uuid.uuid4())
            return BatchRequest("POST", f"{api}/{entity_set}", {**body, pk: record_id}), record_id, generated, truncated
        if operation == "delete":
            record_id = guid(item["id"])
            path = entity_path(entity_set, record_id)
            return BatchRequest("DELETE", f"{api}/{path}", None, {"If-Match": "*"}), record_id, False, ()
        if operation == "update":
            record_id = guid(item["id"])
            path = entity_path(entity_set, record_id)
            return BatchRequest("PATCH", f"{api}/{path}", body, {"If-Match": "*"}), record_id, False, truncated
        # upsert: PATCH without If-Match creates or updates; the representation's status says which
        key = item.get("key")
        record_id = guid(item["id"]) if item.get("id") else None
        path = entity_path(entity_set, record_id or key or {})
        headers = {"Prefer": "return=representation"}
        return BatchRequest("PATCH", f"{api}/{path}?$select={pk}", body, headers), record_id, False, truncated


def _outcome(
    operation: str,
    index: int,
    answer: BatchAnswer,
    record_id: str | None,
    generated: bool,
    truncated: tuple[str, ...],
    pk: str,
) -> WriteOutcome:
    if answer.status < 400:
        found = record_id or _id_of(answer, pk)
        new = {"create": True, "upsert": answer.status == 201}.get(operation)
        return WriteOutcome(index, True, found, new, truncated=truncated)
    error = (answer.body or {}).get("error") if isinstance(answer.body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else f"HTTP {answer.status}"
    if operation == "create" and code == DUPLICATE_KEY and record_id:
        # the row holding this create's own GUID exists: an earlier attempt of this same write made it
        return WriteOutcome(
            index, True, record_id, created=generated, code=code, message="already created", truncated=truncated
        )
    if operation == "delete" and code == RECORD_NOT_FOUND:
        return WriteOutcome(index, True, record_id, code=code, message="already deleted")
    return WriteOutcome(index, False, record_id, code=code, message=message, truncated=truncated)


def _id_of(answer: BatchAnswer, pk: str) -> str | None:
    if isinstance(answer.body, dict) and answer.body.get(pk):
        return str(answer.body[pk])
    entity = answer.headers.get("odata-entityid", "")
    if entity.endswith(")") and "(" in entity:
        inner = entity.rsplit("(", 1)[1][:-1]
        try:
            return guid(inner)
        except ValueError:
            return None
    return None

"""``$batch``: multipart/mixed requests with change sets that succeed or fail together (FACTS §F).

Each part is a full HTTP request; a change set is a nested multipart whose requests carry ``Content-ID``s
and may address an entity created earlier in the same change set as ``$<id>``. A change set runs inside one
SQLite savepoint: when one of its requests fails, the whole change set is rolled back and answered with
that one error. Without ``Prefer: odata.continue-on-error`` the batch stops at the first failure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import API_PATH, BATCH_MAX
from crm_pipelines.sandbox.dynamics.messages import REASONS, ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.odata import parse_prefer
from crm_pipelines.sandbox.dynamics.store import DynamicsStore

_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_CRLF = "\r\n"


@dataclass
class Operation:
    request: ApiRequest
    content_id: str | None = None


@dataclass
class ChangeSet:
    operations: list[Operation] = field(default_factory=list)


def boundary_of(content_type: str) -> str | None:
    m = _BOUNDARY.search(content_type or "")
    return m.group(1) if m else None


def _split(body: str, boundary: str) -> list[str]:
    """The parts between ``--boundary`` delimiters, up to the closing ``--boundary--``."""
    parts: list[str] = []
    current: list[str] | None = None
    for line in body.split("\n"):
        stripped = line.rstrip("\r")
        if stripped == f"--{boundary}":
            if current is not None:
                parts.append("\n".join(current))
            current = []
        elif stripped == f"--{boundary}--":
            if current is not None:
                parts.append("\n".join(current))
            return parts
        elif current is not None:
            current.append(stripped)
    raise errors.bad_request("The batch request is missing its closing boundary.")


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    head, _, body = text.lstrip("\n").partition("\n\n")
    headers = {}
    for line in head.split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, body


def _request(text: str) -> ApiRequest:
    request_line, _, rest = text.lstrip("\n").partition("\n")
    bits = request_line.split()
    if len(bits) < 2:
        raise errors.bad_request(f"Invalid request line in batch part: '{request_line}'.")
    headers, body = _headers_and_body(rest) if rest.strip() else ({}, "")
    url = urlsplit(bits[1])
    path = unquote(url.path)
    if API_PATH in path:
        path = path.split(API_PATH, 1)[1]
    return ApiRequest(
        method=bits[0].upper(), path=path.lstrip("/"), query=dict(parse_qsl(url.query, keep_blank_values=True)),
        headers=headers, body=body.strip().encode(), raw_query=url.query,
    )


def parse(body: bytes, content_type: str) -> list[Operation | ChangeSet]:
    boundary = boundary_of(content_type)
    if not content_type.lower().startswith("multipart/mixed") or not boundary:
        raise errors.bad_request("The batch request must be multipart/mixed with a boundary.")
    items: list[Operation | ChangeSet] = []
    for part in _split(body.decode("utf-8").replace("\r\n", "\n"), boundary):
        headers, content = _headers_and_body(part)
        inner = boundary_of(headers.get("content-type", ""))
        if headers.get("content-type", "").lower().startswith("multipart/mixed") and inner:
            changeset = ChangeSet()
            for sub in _split(content, inner):
                sub_headers, sub_content = _headers_and_body(sub)
                changeset.operations.append(Operation(_request(sub_content), sub_headers.get("content-id")))
            items.append(changeset)
        else:
            items.append(Operation(_request(content), headers.get("content-id")))
    count = sum(len(i.operations) if isinstance(i, ChangeSet) else 1 for i in items)
    if count > BATCH_MAX:
        raise errors.bad_request(f"The number of requests in a batch ({count}) exceeds the limit of {BATCH_MAX}.")
    return items


def _render(response: ApiResponse, content_id: str | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {REASONS.get(response.status, '')}".rstrip()]
    body = response.encoded()
    if body:
        lines.append(f"Content-Type: {response.content_type}")
    lines += ["OData-Version: 4.0", *(f"{k}: {v}" for k, v in response.headers.items()), ""]
    lines.append(body.decode("utf-8") if body else "")
    return _CRLF.join(lines) + _CRLF


def execute(store: DynamicsStore, items: list[Operation | ChangeSet], prefer_header: str | None,
            dispatch: Callable[[ApiRequest], ApiResponse]) -> ApiResponse:
    continue_on_error = parse_prefer(prefer_header).continue_on_error
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[str] = []
    for n, item in enumerate(items):
        if isinstance(item, Operation):
            response = dispatch(item.request)
            out.append(f"--{boundary}{_CRLF}{_render(response, item.content_id)}")
            failed = response.status >= 400
        else:
            answers, failure = _run_changeset(store, item, dispatch, n)
            if failure is not None:
                out.append(f"--{boundary}{_CRLF}{_render(failure[1], failure[0])}")
                failed = True
            else:
                inner = f"changesetresponse_{uuid.uuid4()}"
                parts = "".join(f"--{inner}{_CRLF}{_render(r, cid)}" for cid, r in answers)
                out.append(f"--{boundary}{_CRLF}Content-Type: multipart/mixed; boundary={inner}{_CRLF}{_CRLF}"
                           f"{parts}--{inner}--{_CRLF}")
                failed = False
        if failed and not continue_on_error:
            break
    body = "".join(out) + f"--{boundary}--{_CRLF}"
    return ApiResponse(200, raw=body.encode("utf-8"), content_type=f"multipart/mixed; boundary={boundary}")


def _run_changeset(store: DynamicsStore, changeset: ChangeSet, dispatch: Callable[[ApiRequest], ApiResponse],
                   n: int) -> tuple[list[tuple[str | None, ApiResponse]], tuple[str | None, ApiResponse] | None]:
    answers: list[tuple[str | None, ApiResponse]] = []
    created: dict[str, str] = {}  # Content-ID -> entity path ("contacts(<id>)")
    try:
        with store.transaction():  # a change set: all or nothing
            for op in changeset.operations:
                if op.request.method == "GET":
                    raise errors.bad_request("A change set may not contain GET requests.")
                _resolve_references(op.request, created)
                response = dispatch(op.request)
                if response.status >= 400:
                    raise _Failed(op.content_id, response)
                entity = response.headers.get("OData-EntityId", "")
                if op.content_id and API_PATH in entity:
                    created[op.content_id] = entity.split(API_PATH, 1)[1].lstrip("/")
                answers.append((op.content_id, response))
    except _Failed as failed:
        return [], (failed.content_id, failed.response)
    except errors.DataverseError as err:
        return [], (None, ApiResponse.of_error(err))
    return answers, None


class _Failed(Exception):
    """Raised inside the change set's savepoint so it rolls back; carries the failing answer."""

    def __init__(self, content_id: str | None, response: ApiResponse) -> None:
        super().__init__(content_id)
        self.content_id, self.response = content_id, response


def _resolve_references(req: ApiRequest, created: dict[str, str]) -> None:
    """``$1`` in a URL or an ``@odata.bind`` value means the entity created by Content-ID 1."""
    if req.path.startswith("$"):
        ref, _, rest = req.path[1:].partition("/")
        if ref not in created:
            raise errors.bad_request(f"Content-ID reference '${ref}' is not defined in this change set.")
        req.path = created[ref] + (f"/{rest}" if rest else "")
    if b'"$' in req.body:
        for cid, path in created.items():
            req.body = req.body.replace(f'"${cid}"'.encode(), f'"/{path}"'.encode())

"""``$batch`` on the wire (FACTS §F): multipart/mixed requests of change sets, and their multipart answers.

Each write travels in its own change set (one request each): a change set is atomic, so a bad record rolls
back only itself, and with ``Prefer: odata.continue-on-error`` the batch goes on past it. That keeps a
thousand records to one HTTP call while every record still gets its own outcome.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

CRLF = "\r\n"
BATCH_MAX = 1_000  # requests per $batch (FACTS §F)
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_STATUS_LINE = re.compile(r"^HTTP/1\.[01] (\d{3})")


class MalformedBatch(ValueError):
    """The answer is not the multipart document it should be (cut short on the way, say)."""


@dataclass(frozen=True)
class BatchRequest:
    method: str
    url: str  # absolute, as the SDK sends it
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchAnswer:
    content_id: str | None
    status: int
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None


def encode(requests: list[BatchRequest]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch holding one change set per request; Content-ID = position + 1."""
    if len(requests) > BATCH_MAX:
        raise ValueError(f"a batch holds at most {BATCH_MAX} requests")
    boundary = f"batch_{uuid.uuid4().hex}"
    out: list[str] = []
    for n, request in enumerate(requests, start=1):
        changeset = f"changeset_{uuid.uuid4().hex}"
        lines = [
            f"--{boundary}",
            f"Content-Type: multipart/mixed; boundary={changeset}",
            "",
            f"--{changeset}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {n}",
            "",
            f"{request.method} {request.url} HTTP/1.1",
        ]
        if request.body is not None:
            lines.append("Content-Type: application/json; type=entry")
        lines += [f"{k}: {v}" for k, v in request.headers.items()]
        lines += ["", orjson.dumps(request.body).decode() if request.body is not None else "", f"--{changeset}--"]
        out.append(CRLF.join(lines))
    body = CRLF.join(out) + f"{CRLF}--{boundary}--{CRLF}"
    return f'multipart/mixed; boundary="{boundary}"', body.encode("utf-8")


def decode(content_type: str, content: bytes) -> list[BatchAnswer]:
    """Every HTTP answer in the batch response, change sets flattened, in order."""
    boundary = _boundary(content_type)
    try:
        text = content.decode("utf-8").replace(CRLF, "\n")
    except UnicodeDecodeError:
        raise MalformedBatch("the batch answer is not UTF-8") from None
    answers: list[BatchAnswer] = []
    for part in _parts(text, boundary):
        headers, payload = _head(part)
        inner = headers.get("content-type", "")
        if inner.lower().startswith("multipart/mixed"):
            for sub in _parts(payload, _boundary(inner)):
                answers.append(_answer(sub))
        else:
            answers.append(_answer(part))
    return answers


def _boundary(content_type: str) -> str:
    m = _BOUNDARY.search(content_type or "")
    if not m:
        raise MalformedBatch(f"no multipart boundary in {content_type!r}")
    return m.group(1)


def _parts(text: str, boundary: str) -> list[str]:
    parts: list[str] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        if line == f"--{boundary}":
            if current is not None:
                parts.append("\n".join(current))
            current = []
        elif line == f"--{boundary}--":
            if current is not None:
                parts.append("\n".join(current))
            return parts
        elif current is not None:
            current.append(line)
    raise MalformedBatch("the batch answer ends before its closing boundary")


def _head(text: str) -> tuple[dict[str, str], str]:
    head, _, rest = text.lstrip("\n").partition("\n\n")
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers, rest


def _answer(part: str) -> BatchAnswer:
    outer, http = _head(part)
    status_line, _, rest = http.lstrip("\n").partition("\n")
    m = _STATUS_LINE.match(status_line)
    if not m:
        raise MalformedBatch(f"no status line in a batch part: {status_line[:80]!r}")
    headers, body_text = _head(rest) if rest.strip() else ({}, "")
    body_text = body_text.strip()
    body = None
    if body_text:
        try:
            body = orjson.loads(body_text)
        except orjson.JSONDecodeError:
            raise MalformedBatch("a batch part's body is not valid JSON") from None
    return BatchAnswer(outer.get("content-id"), int(m.group(1)), headers, body)

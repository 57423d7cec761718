"""Transport-neutral request and response, so the same handlers serve plain HTTP and ``$batch`` parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response

from crm_pipelines.sandbox.dynamics.errors import JSON_TYPE, DataverseError

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed",
           429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class ApiRequest:
    method: str
    path: str  # below the API root, e.g. "contacts(…)" (no leading slash), still percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    raw_query: str = ""  # as received, for paging links that must keep the caller's options

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as e:
            raise DataverseError(400, "0x80040203", f"Invalid JSON in the request body: {e}") from None


@dataclass
class ApiResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a non-JSON body ($metadata's XML, a $batch multipart answer)
    content_type: str = JSON_TYPE

    @classmethod
    def of_error(cls, err: DataverseError) -> ApiResponse:
        return cls(err.status, err.body(), dict(err.headers))

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.body is None else orjson.dumps(self.body)

    def to_starlette(self) -> Response:
        headers = {"OData-Version": "4.0", **self.headers}
        if self.body is None and self.raw is None:
            return Response(status_code=self.status, headers=headers)
        return Response(self.encoded(), status_code=self.status, media_type=self.content_type, headers=headers)

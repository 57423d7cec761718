"""HubSpot's error bodies (FACTS §5-7): ``status``, ``message``, ``correlationId``, ``category``."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json;charset=utf-8"
# Every answer carries one id, in this header and as the body's correlationId when there is one (FACTS §4).
CORRELATION_HEADER = "X-HubSpot-Correlation-Id"


def correlation_id() -> str:
    return str(uuid.uuid4())


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE, headers=headers)


class HubSpotError(Exception):
    """Raised anywhere in a handler; rendered as the API's standard error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        errors: list[dict] | None = None,
        context: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.errors, self.context, self.headers, self.sub_category = errors, context, headers, sub_category

    def body(self, cid: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": cid or correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.errors:
            body["errors"] = self.errors
        if self.context:
            body["context"] = self.context
        return body

    def as_batch_error(self) -> dict[str, Any]:
        """The ``StandardError`` shape inside 207 multi-status bodies (every field the SDK requires)."""
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context or {},
            "errors": self.errors or [],
            "links": {},
        }

    def response(self, cid: str | None = None) -> Response:
        """The error answer, its correlation id the same in the body and the header."""
        cid = cid or correlation_id()
        return json_response(self.body(cid), self.status, {**(self.headers or {}), CORRELATION_HEADER: cid})


def validation(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kw)


def not_found(object_id: str) -> HubSpotError:
    # FACTS §5: the live API's text, two spaces included.
    return HubSpotError(
        404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [object_id]}
    )


def conflict_existing_contact(existing_id: int) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing_id}")


def unauthenticated() -> HubSpotError:
    return HubSpotError(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        headers={"X-HubSpot-Auth-Failure": "401 Unauthorized"},
    )


def expired(expired_ago_s: int, expire_time_iso: str) -> HubSpotError:
    return HubSpotError(
        401,
        "EXPIRED_AUTHENTICATION",
        f"The OAuth token used to make this call expired {expired_ago_s} second(s) ago.",
        context={"expire time": [expire_time_iso]},
        headers={"X-HubSpot-Auth-Failure": "401 Unauthorized"},
    )


def property_errors(problems: list[tuple[str, str, str]]) -> HubSpotError:
    """400 for invalid property values; ``problems`` are (property, code, message) (FACTS §12)."""
    details = [
        {"isValid": False, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg}
        for name, code, msg in problems
    ]
    return validation(
        "Property values were not valid: " + orjson.dumps(details).decode(),
        errors=[{"message": msg, "code": code, "context": {"propertyName": [name]}} for name, code, msg in problems],
    )

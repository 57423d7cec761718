"""Salesforce's REST error bodies: a JSON list of ``{"message", "errorCode", "fields"}`` (FACTS §3)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json;charset=UTF-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE, headers=headers)


class SalesforceError(Exception):
    """Raised anywhere in a handler; rendered as the API's error list."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = self.fields
        return body

    def as_save_error(self) -> dict[str, Any]:
        # Inside SaveResults (collections) the code's key is statusCode (FACTS §9).
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        if self.status == 300:  # several records match an external id: the body lists their URLs (FACTS §3)
            return json_response(self.fields or [], 300, headers)
        return json_response([self.as_dict()], self.status, headers)


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", message)


def entity_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def malformed_id(label: str, value: str, field: str) -> SalesforceError:
    """A reference field given something that is not an id of the right object."""
    return SalesforceError(400, "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [field])


def bad_record_path(value: str) -> SalesforceError:
    # What GET /sobjects/{type}/{x} answers when x is neither an id nor an external-id field name.
    return not_found(f"Provided external ID field does not exist or is not accessible: {value}")


def json_parser_error(detail: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", f"The request body is invalid: {detail}")


def invalid_field_write(object_name: str, name: str) -> SalesforceError:
    return SalesforceError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {object_name}", [name])


def not_writable(object_name: str, name: str, update: bool) -> SalesforceError:
    verb = "update" if update else "insert"
    return SalesforceError(
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: {name}. Please check the security settings of this field and verify "
        f"that it is read/write for your profile or permission set. ({verb} on {object_name})",
        [name],
    )


def request_limit_exceeded() -> SalesforceError:
    return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def unsupported_version(version: str) -> SalesforceError:
    return not_found(f"The requested resource does not exist (API version {version} is not served)")

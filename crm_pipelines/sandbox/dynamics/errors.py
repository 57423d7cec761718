"""Dataverse error bodies: ``{"error": {"code": "0x…", "message": …}}`` (FACTS §E).

Codes are the 32-bit hex form of the platform's error numbers. Where FACTS marks a code unverified it is
still the one the platform is commonly seen to return; codes the sandbox had to choose are marked here.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json; odata.metadata=minimal"

RECORD_NOT_FOUND = "0x80040217"  # FACTS §E
DUPLICATE_KEY = "0x80040237"  # FACTS §E
SEGMENT_NOT_FOUND = "0x8006088a"  # FACTS §E
PROPERTY_NOT_FOUND = "0x80060888"  # FACTS §E (hex unverified)
INVALID_STATUS = "0x80048408"  # FACTS §E: statuscode not valid for statecode
VERSION_MISMATCH = "0x80060882"  # If-Match etag differs from the row's version
INVALID_ARGUMENT = "0x80040203"  # the platform's generic "invalid argument"
UNEXPECTED = "0x80040216"  # the platform's generic "unexpected error"
REQUESTS_EXCEEDED = "0x80072322"  # FACTS §H
EXECUTION_TIME_EXCEEDED = "0x80072321"  # FACTS §H
CONCURRENCY_EXCEEDED = "0x80072326"  # FACTS §H
# Opportunity close (DEAL-4), from Dataverse's "Web service error codes" reference
# (learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes):
OPPORTUNITY_ALREADY_CLOSED = "0x80040515"  # OpportunityIsAlreadyClosed: "The opportunity is already closed."
OPPORTUNITY_SET_STATE = "0x80100005"  # CannotUseOpportunitySetStateMessage: Won/Lost only by their actions


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE, headers=headers)


class DataverseError(Exception):
    """Raised anywhere in a handler; rendered as the Web API's error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)


def bad_request(message: str, code: str = INVALID_ARGUMENT) -> DataverseError:
    return DataverseError(400, code, message)


def not_found(logical_name: str, record_id: str) -> DataverseError:
    return DataverseError(404, RECORD_NOT_FOUND, f"{logical_name} With Id = {record_id} Does Not Exist")


def segment_not_found(segment: str) -> DataverseError:
    return DataverseError(404, SEGMENT_NOT_FOUND, f"Resource not found for the segment '{segment}'.")


def no_property(name: str, logical_name: str) -> DataverseError:
    return bad_request(
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical_name}'.",
        PROPERTY_NOT_FOUND,
    )


def invalid_property(name: str, logical_name: str) -> DataverseError:
    return bad_request(
        f"Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{logical_name}'.",
        PROPERTY_NOT_FOUND,
    )


def duplicate(precondition: bool = True) -> DataverseError:
    """412 when an ``If-None-Match: *`` upsert finds the row; a plain create of an existing id is a 400 (FACTS §E)."""
    if precondition:
        return DataverseError(412, DUPLICATE_KEY, "A record with matching key values already exists.")
    return DataverseError(400, DUPLICATE_KEY, "Cannot insert duplicate key.")


def version_mismatch() -> DataverseError:
    return DataverseError(
        412, VERSION_MISMATCH, "The version of the existing record doesn't match the RowVersion property provided."
    )

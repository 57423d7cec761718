"""The shared ``ApiClient`` taught two Salesforce facts it cannot learn from a ``Dialect`` alone.

1. Throttling is 403 ``REQUEST_LIMIT_EXCEEDED``, never 429 (FACTS §4). The concurrency of long-running
   requests frees up in seconds, so that refusal is retried like a 429; a spent daily allocation frees up
   only as the rolling 24 h window moves, so it is raised as :class:`RequestLimitExceeded` and the caller
   defers the work. The shared layer would call both an ``AuthenticationError``.
2. Bulk API 2.0 results are CSV, which the shared layer does not parse. A body cut short in transit still
   arrives as a 200 with a matching ``Content-Length``; each page is therefore parsed here and checked
   against ``Sforce-NumberOfRecords`` and its final line ending, and a short page is retried like a
   malformed JSON body.

Both hook into ``ApiClient._attempt`` (one attempt inside the retry loop), so retries, metering, the rate
limiter and the call budget stay the shared layer's. The integrator may prefer a ``Dialect.classify``
hook in ``crm/http.py`` instead (see the report of the Salesforce connector).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from crm_pipelines.crm.errors import ApiError, AuthenticationError
from crm_pipelines.crm.http import ApiClient, ApiResponse
from crm_pipelines.crm.metering import CallRecord
from crm_pipelines.crm.salesforce.dialect import is_daily_limit

CSV_ENDPOINT_SUFFIX = "/results"


class RequestLimitExceeded(ApiError):
    """The org's rolling 24 h API allocation is spent (403 REQUEST_LIMIT_EXCEEDED, OPS-2): defer the work."""


class SalesforceApi(ApiClient):
    async def _attempt(self, method: str, url: str, endpoint: str, *args: Any, **kwargs: Any) -> ApiResponse:
        try:
            response = await super()._attempt(method, url, endpoint, *args, **kwargs)
        except AuthenticationError as error:
            if error.status != 403 or error.code != "REQUEST_LIMIT_EXCEEDED":
                raise
            if is_daily_limit(error.api_message):
                raise RequestLimitExceeded(
                    self.connection,
                    status=403,
                    endpoint=endpoint,
                    code=error.code,
                    message=error.api_message + " (the org's 24 h API allocation is spent; the work is deferred)",
                ) from None
            raise self._transient(endpoint, 403, error.code, error.api_message) from None
        if endpoint.endswith(CSV_ENDPOINT_SUFFIX) and response.status == 200:
            response.data = self._csv_rows(response, endpoint)
        return response

    def _csv_rows(self, response: ApiResponse, endpoint: str) -> list[list[str]]:
        text = response.content.decode("utf-8")
        expected = response.headers.get("Sforce-NumberOfRecords")
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            rows = None
        complete = (
            rows is not None
            and bool(rows)
            and text.endswith("\n")
            and (expected is None or not expected.isdigit() or len(rows) - 1 == int(expected))
        )
        if not complete:
            last = self.meter.calls[-1]  # the attempt the shared layer just metered as a 200
            self.meter.calls[-1] = CallRecord(
                self.connection, last.method, last.endpoint, "malformed", last.duration_s, last.attempt
            )
            raise self._transient(endpoint, 200, "MALFORMED", "the CSV result page is incomplete")
        assert rows is not None
        return rows

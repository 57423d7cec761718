"""Salesforce's error bodies, usage header and limits (specs/salesforce/FACTS.md §3, §4).

Salesforce never answers 429 and sends no ``Retry-After``: an org over a limit refuses with 403
``REQUEST_LIMIT_EXCEEDED``. Two different limits produce it: the concurrency of long-running requests
(gone in seconds, worth retrying) and the rolling 24 h allocation (gone in hours: the work is deferred).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import orjson

from crm_pipelines.crm.http import ErrorParts
from crm_pipelines.crm.ratelimit import RateLimits, Window

DAY_S = 24 * 3600
# FACTS §4: the allocation is 100,000 + per-licence adders over any rolling 24 h; 25 concurrent long-running
# (>= 20 s) requests in production orgs and sandboxes, 5 in Developer Edition and trials.
DAILY_ALLOCATION = 100_000
CONCURRENT_LONG_RUNNING = 25
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# The daily allocation's message ("TotalRequests Limit exceeded."); the concurrency one names its limit
# ("ConcurrentPerOrgLongTxn Limit exceeded.").
_DAILY_MESSAGE = re.compile(r"TotalRequests", re.I)


def salesforce_limits(
    daily_allocation: int = DAILY_ALLOCATION, concurrent_long_running: int = CONCURRENT_LONG_RUNNING
) -> RateLimits:
    """The org's allocation as one rolling 24 h window; concurrency capped at the long-running limit.

    Salesforce has no per-second limit: calls may burst as long as the 24 h total fits. Capping concurrency
    at the long-running limit means that even if every call ran 20 s or more, none would be refused.
    """
    return RateLimits(
        buckets={"default": (Window(daily_allocation, float(DAY_S)),)},
        max_concurrency=concurrent_long_running,
    )


SALESFORCE_LIMITS = salesforce_limits()


@dataclass
class ApiUsage:
    """The org's usage as the last ``Sforce-Limit-Info`` header reported it (all clients of the org)."""

    used: int | None = None
    allocation: int | None = None


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    match = _USAGE.search(value or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def is_daily_limit(message: str) -> bool:
    return bool(_DAILY_MESSAGE.search(message))


class SalesforceDialect:
    def __init__(self) -> None:
        self.usage = ApiUsage()

    def parse_error(self, response: httpx.Response) -> ErrorParts:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return ErrorParts(None, response.reason_phrase or "error without a body")
        # REST errors are a list of {message, errorCode, fields} (FACTS §3)
        if isinstance(body, list) and body and isinstance(body[0], dict):
            first = body[0]
            return ErrorParts(first.get("errorCode") or first.get("statusCode"), str(first.get("message", "")))
        # the OAuth endpoint's {"error", "error_description"} (FACTS §2)
        if isinstance(body, dict) and "error" in body:
            return ErrorParts(str(body["error"]), str(body.get("error_description", "")))
        return ErrorParts(None, str(body)[:500])

    def retry_after(self, response: httpx.Response) -> float | None:
        return None  # Salesforce sends none (FACTS §4): the client's own backoff decides

    def auth_expired(self, response: httpx.Response) -> bool:
        return self.parse_error(response).code == "INVALID_SESSION_ID"

    def window_remaining(self, response: httpx.Response) -> tuple[int, float] | None:
        # Salesforce reports only the org's 24 h usage (Sforce-Limit-Info), no short window
        return None

    def throttle_hint(self, response: httpx.Response) -> float | None:
        # Not a pause: the header reports the org's 24 h usage, which only the allocation window frees.
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage:
            self.usage.used, self.usage.allocation = usage
        return None

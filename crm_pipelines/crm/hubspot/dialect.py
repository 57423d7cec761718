"""HubSpot's error bodies, rate-limit headers and 429 policies (specs/hubspot/FACTS.md §4, §5, §7)."""

from __future__ import annotations

import httpx
import orjson

from crm_pipelines.crm.http import ErrorParts, parse_retry_after
from crm_pipelines.crm.ratelimit import RateLimits, Window

# Private apps' calls per rolling 10 s by the portal's tier, and with the API Limit Increase add-on; search
# has its own 5 per second and is exempt from the 10-second bucket (FACTS §2, §4).
TEN_SECONDLY_BY_TIER = {"free": 100, "starter": 100, "professional": 190, "enterprise": 190}
TEN_SECONDLY_WITH_LIMIT_INCREASE = 250
SEARCH_PER_SECOND = 5


def hubspot_limits(tier: str = "professional", api_limit_increase: bool = False) -> RateLimits:
    """The rate buckets of a portal of ``tier``, with or without the API Limit Increase add-on (FACTS §4)."""
    ten_secondly = TEN_SECONDLY_WITH_LIMIT_INCREASE if api_limit_increase else TEN_SECONDLY_BY_TIER[tier]
    return RateLimits(
        buckets={"default": (Window(ten_secondly, 10.0),), "search": (Window(SEARCH_PER_SECOND, 1.0),)},
        max_concurrency=8,
    )


HUBSPOT_LIMITS = hubspot_limits()
_POLICY_WAIT_S = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}


class HubSpotDialect:
    def parse_error(self, response: httpx.Response) -> ErrorParts:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return ErrorParts(None, response.reason_phrase or "error without a body")
        if not isinstance(body, dict):
            return ErrorParts(None, str(body)[:500])
        details = body.get("errors") or []
        code = body.get("category") or body.get("errorType")
        if details and isinstance(details[0], dict) and details[0].get("code"):
            code = f"{code}/{details[0]['code']}" if code else details[0]["code"]
        return ErrorParts(code, str(body.get("message", "")), body.get("correlationId"))

    def retry_after(self, response: httpx.Response) -> float | None:
        hinted = parse_retry_after(response.headers.get("Retry-After"))
        if hinted is not None:
            return hinted
        try:
            policy = orjson.loads(response.content).get("policyName")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return _POLICY_WAIT_S.get(policy)

    def auth_expired(self, response: httpx.Response) -> bool:
        try:
            return orjson.loads(response.content).get("category") == "EXPIRED_AUTHENTICATION"
        except (orjson.JSONDecodeError, AttributeError):
            return False

    def window_remaining(self, response: httpx.Response) -> tuple[int, float] | None:
        # Every answer outside search says how many calls the app's window (ten seconds) has left (FACTS §4).
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        if remaining is None or not remaining.isdigit() or not interval.isdigit():
            return None
        return int(remaining), int(interval) / 1000

    def throttle_hint(self, response: httpx.Response) -> float | None:
        # No calls left in the window: wait it out rather than collect a 429.
        if response.headers.get("X-HubSpot-RateLimit-Remaining") == "0":
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
            return int(interval) / 1000 if interval.isdigit() else 10.0
        return None

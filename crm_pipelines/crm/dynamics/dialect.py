"""Dataverse's error bodies, 401 challenges and service-protection limits (specs/dynamics/FACTS.md §E, §H)."""

from __future__ import annotations

import httpx
import orjson

from crm_pipelines.crm.http import ErrorParts, parse_retry_after
from crm_pipelines.crm.ratelimit import RateLimits, Window

# FACTS §H: per user and web server, 6,000 requests and 1,200,000 ms of execution in any 300 s, 52 at once.
REQUESTS_PER_WINDOW = 6_000
WINDOW_S = 300.0
# 1,200,000 ms per 300 s is four requests executing back to back for the whole window: three in flight keep
# a sync below the execution-time limit however slow the server gets, far below the 52 concurrent allowed.
MAX_CONCURRENCY = 3
DYNAMICS_LIMITS = RateLimits(
    buckets={"default": (Window(REQUESTS_PER_WINDOW, WINDOW_S),)}, max_concurrency=MAX_CONCURRENCY
)
SUSTAINED_PER_S = REQUESTS_PER_WINDOW / WINDOW_S

_REQUEST_ID_HEADERS = ("x-ms-service-request-id", "req_id", "x-ms-request-id")


class DynamicsDialect:
    def parse_error(self, response: httpx.Response) -> ErrorParts:
        correlation = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None)
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            # 401s come with a WWW-Authenticate challenge and no body
            challenge = response.headers.get("WWW-Authenticate", "")
            return ErrorParts(None, _challenge_reason(challenge) or response.reason_phrase or "error", correlation)
        message = str(error.get("message") or "")
        inner = error.get("innererror")
        if isinstance(inner, dict) and inner.get("message") and inner["message"] != message:
            message = f"{message} ({inner['message']})"
        return ErrorParts(error.get("code"), message, correlation)

    def retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("Retry-After"))

    def auth_expired(self, response: httpx.Response) -> bool:
        # Dataverse answers an expired or revoked bearer token with 401 and a challenge, never with a body
        # saying which; one fresh token settles it (the client refreshes once, then the 401 is final).
        return response.status_code == 401

    def window_remaining(self, response: httpx.Response) -> tuple[int, float] | None:
        # x-ms-ratelimit-burst-remaining-xrm-requests counts a five-minute window per user; a 429 always holds the
        # bucket (its Retry-After says how long)
        return None

    def throttle_hint(self, response: httpx.Response) -> float | None:
        # x-ms-ratelimit-burst-remaining-xrm-requests says how many calls are left but not when the window
        # frees one; the client's own window already holds calls back, and a 429's Retry-After covers the rest.
        return None


def _challenge_reason(challenge: str) -> str | None:
    marker = 'error_description="'
    if marker not in challenge:
        return None
    return challenge.split(marker, 1)[1].split('"', 1)[0]

"""Authentication and HubSpot's rate limits as a client sees them (FACTS §4, §7)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from crm_pipelines.sandbox.faults import FaultConfig
from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.catalog import (
    DAILY_LIMIT,
    SEARCH_PER_SECOND,
    TEN_SECONDLY_LIMIT,
    TEN_SECONDLY_WINDOW_S,
)
from crm_pipelines.sandbox.hubspot.store import HubSpotStore
from crm_pipelines.sandbox.hubspot.values import iso_ms
from crm_pipelines.sandbox.ratelimit import DailyCounter, Decision, RollingWindow, scaled


def rate_limited(policy: str, message: str, retry_after_s: float, cid: str) -> Response:
    """The 429 body; ``cid`` is also the response's X-HubSpot-Correlation-Id (one id per answer)."""
    body = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": cid,
        "policyName": policy,
        "requestId": errors.correlation_id(),
    }
    # Seconds, as urllib3's Retry (the SDK's documented retry) reads it (FACTS §4).
    headers = {"Retry-After": str(max(1, round(retry_after_s + 0.499))), errors.CORRELATION_HEADER: cid}
    return errors.json_response(body, 429, headers)


def ten_secondly_exceeded(cid: str, retry_after_s: float = TEN_SECONDLY_WINDOW_S) -> Response:
    return rate_limited(
        "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.", retry_after_s, cid
    )


class Limits:
    """Per-app 10-second windows, one daily allowance per account, and search's own per-second limit."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._windows: dict[str, RollingWindow] = {}
        self._daily: DailyCounter | None = None
        self._search: RollingWindow | None = None

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._windows.clear()
        self._daily = None
        self._search = None

    def _limit(self, published: int) -> int:
        return scaled(published, self.config.rate_limit_multiplier)

    def check(self, app: str, is_search: bool, is_oauth: bool, cid: str) -> tuple[Response | None, dict[str, str]]:
        """A 429 response when over a limit, else the rate-limit headers for the answer."""
        if not self.config.rate_limits_enabled:
            return None, {}
        now = time.monotonic()
        if is_search:
            if self._search is None:
                self._search = RollingWindow(self._limit(SEARCH_PER_SECOND), 1.0)
            d = self._search.acquire(now)
            if not d.allowed:
                return rate_limited("SECONDLY", "You have reached your secondly limit.", d.retry_after_s, cid), {}
            return self._daily_check(time.time(), {}, cid) if not is_oauth else (None, {})
        window = self._windows.get(app)
        if window is None:
            window = self._windows[app] = RollingWindow(self._limit(TEN_SECONDLY_LIMIT), TEN_SECONDLY_WINDOW_S)
        d = window.acquire(now)
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(TEN_SECONDLY_WINDOW_S * 1000)),
            "X-HubSpot-RateLimit-Max": str(d.limit),
            "X-HubSpot-RateLimit-Remaining": str(d.remaining),
        }
        if not d.allowed:
            return ten_secondly_exceeded(cid, d.retry_after_s), {}
        if is_oauth:  # daily headers are not sent for OAuth-authorized calls (FACTS §4)
            return None, headers
        return self._daily_check(time.time(), headers, cid)

    def _daily_check(
        self, now: float, headers: dict[str, str], cid: str
    ) -> tuple[Response | None, dict[str, str]]:
        if self._daily is None:
            self._daily = DailyCounter(self.config.daily_limit or self._limit(DAILY_LIMIT))
        d: Decision = self._daily.acquire(now)
        if not d.allowed:
            return rate_limited("DAILY", "You have reached your daily limit.", d.retry_after_s, cid), {}
        if headers:
            headers = {
                **headers,
                "X-HubSpot-RateLimit-Daily": str(d.limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(d.remaining),
            }
        return None, headers


def authenticate(store: HubSpotStore, request: Request) -> tuple[str, bool]:
    """(app name, is OAuth) of the bearer token; raises the 401 HubSpot sends otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise errors.unauthenticated()
    found = store.token(token.strip())
    if found is None or found[0] == "oauth_refresh":
        raise errors.unauthenticated()
    kind, app, _, expires_ms = found
    now = int(time.time() * 1000)
    if expires_ms is not None and expires_ms <= now:
        raise errors.expired((now - expires_ms) // 1000, iso_ms(expires_ms))
    return app, kind == "oauth_access"

"""The one HTTP layer every connector uses: rate limits, the 24 h call budget, retries, auth refresh, metering.

Each attempt passes the rate limiter and spends one call of the budget before it is sent (a retry is a
call like any other), is metered, and is classified: transient failures (429, 5xx, timeouts, dropped
connections, bodies that do not parse) are retried with exponential backoff and jitter, honouring the
server's ``Retry-After``; an expired token is refreshed once; anything else is raised as a typed error
carrying the API's code and message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RetriesExhausted,
    TransientError,
)
from crm_pipelines.crm.metering import CallRecord, Meter
from crm_pipelines.crm.ratelimit import RateLimiter, RateLimits

log = logging.getLogger("crm_pipelines.crm")


@dataclass(frozen=True)
class ErrorParts:
    """The code, message and correlation id an API put in an error body."""

    code: str | None
    message: str
    correlation_id: str | None = None


class Dialect(Protocol):
    """What differs between the APIs' error and throttling conventions."""

    def parse_error(self, response: httpx.Response) -> ErrorParts: ...

    def retry_after(self, response: httpx.Response) -> float | None: ...

    def auth_expired(self, response: httpx.Response) -> bool: ...

    def throttle_hint(self, response: httpx.Response) -> float | None:
        """Seconds to hold the bucket although the call succeeded (e.g. no calls left in the window)."""
        ...


class Auth(Protocol):
    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]: ...

    async def refresh(self, http: httpx.AsyncClient) -> None: ...

    def secrets(self) -> list[str]: ...


@dataclass
class ApiResponse:
    status: int
    headers: httpx.Headers
    content: bytes
    data: Any = None  # the parsed JSON body, when one was expected


def verify_option(ca_bundle: str | None, verify: bool = True) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else verify


class ApiClient:
    def __init__(
        self,
        connection: str,
        base_url: str,
        *,
        dialect: Dialect,
        auth: Auth,
        limits: RateLimits,
        budget: CallBudget | None = None,
        meter: Meter | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 60.0,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.connection, self.base_url, self.dialect, self.auth = connection, base_url.rstrip("/"), dialect, auth
        self.limiter = RateLimiter(limits, sleep=sleep, shared_key=(connection, self.base_url))
        self.budget = budget or CallBudget(connection)
        self.meter = meter or Meter()
        self.max_attempts, self.sleep = max_attempts, sleep
        self._backoff = wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s)
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=verify,
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=limits.max_concurrency, max_keepalive_connections=limits.max_concurrency
            ),
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.budget.close()
        await self.http.aclose()

    def redact(self, text: str) -> str:
        for secret in self.auth.secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    async def request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        bucket: str = "default",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
        ok: tuple[int, ...] = (),
    ) -> ApiResponse:
        """One logical call, retried as needed. ``endpoint`` is the route template used for metering."""

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hinted = getattr(error, "retry_after", None)
            return float(hinted) if hinted is not None else self._backoff(state)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception_type(TransientError),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda s: log.warning(
                "%s: %s failed (attempt %d), retrying: %s",
                self.connection,
                endpoint,
                s.attempt_number,
                s.outcome.exception() if s.outcome else "",
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return await self._attempt(
                        method, url, endpoint, bucket, params, json, content, headers, expect_json, ok, number
                    )
        except TransientError as last:
            raise RetriesExhausted(self.connection, self.max_attempts, last) from None
        raise AssertionError("unreachable")

    async def _attempt(
        self,
        method: str,
        url: str,
        endpoint: str,
        bucket: str,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | str | None,
        headers: Mapping[str, str] | None,
        expect_json: bool,
        ok: tuple[int, ...],
        number: int,
        refreshed: bool = False,
    ) -> ApiResponse:
        async with self.limiter.concurrency:
            stamps = await self.limiter.acquire(bucket)
            await self.budget.spend()
            sent = {**(await self.auth.headers(self.http)), **(headers or {})}
            started = time.perf_counter()
            body = orjson.dumps(json) if json is not None else content
            if json is not None:
                sent.setdefault("Content-Type", "application/json")
            try:
                try:
                    response = await self.http.request(method, url, params=params, content=body, headers=sent)
                finally:
                    self.limiter.complete(stamps)
            except httpx.TimeoutException:
                self._record(method, endpoint, "timeout", started, number)
                raise self._transient(endpoint, 0, "TIMEOUT", "the request timed out") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError) as e:
                self._record(method, endpoint, "dropped", started, number)
                raise self._transient(endpoint, 0, "CONNECTION", f"connection failed: {type(e).__name__}") from None
        self._record(method, endpoint, response.status_code, started, number)
        status = response.status_code
        if status < 400 or status in ok:
            hint = self.dialect.throttle_hint(response)
            if hint:
                self.limiter.pause(bucket, hint)
            data = None
            if expect_json and response.content:
                try:
                    data = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    self.meter.calls[-1] = CallRecord(self.connection, method, endpoint, "malformed", 0.0, number)
                    raise self._transient(
                        endpoint, status, "MALFORMED", "the response body is not valid JSON"
                    ) from None
            return ApiResponse(status, response.headers, response.content, data)
        if status == 401 and not refreshed and self.dialect.auth_expired(response):
            await self.auth.refresh(self.http)
            return await self._attempt(
                method, url, endpoint, bucket, params, json, content, headers, expect_json, ok, number, True
            )
        parsed = self.dialect.parse_error(response)
        if status == 429 or status >= 500:
            retry_after = self.dialect.retry_after(response)
            if status == 429:
                self.limiter.pause(bucket, retry_after if retry_after is not None else 1.0)
            raise self._transient(endpoint, status, parsed.code, parsed.message, parsed.correlation_id, retry_after)
        kind = {401: AuthenticationError, 403: AuthenticationError, 404: NotFoundError, 409: ConflictError}
        raise kind.get(status, ApiError)(
            self.connection,
            status=status,
            endpoint=endpoint,
            code=parsed.code,
            message=self.redact(parsed.message),
            correlation_id=parsed.correlation_id,
        )

    def _transient(
        self,
        endpoint: str,
        status: int,
        code: str | None,
        message: str,
        correlation_id: str | None = None,
        retry_after: float | None = None,
    ) -> TransientError:
        return TransientError(
            self.connection,
            status=status,
            endpoint=endpoint,
            code=code,
            message=self.redact(message),
            correlation_id=correlation_id,
            retry_after=retry_after,
        )

    def _record(self, method: str, endpoint: str, status: int | str, started: float, attempt: int) -> None:
        self.meter.record(CallRecord(self.connection, method, endpoint, status, time.perf_counter() - started, attempt))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by these APIs)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None

"""The one HTTP layer every connector uses: rate limits, the 24 h call budget, retries, auth refresh, metering.

Each attempt passes the rate limiter and spends one call of the budget before it is sent (a retry is a
call like any other), is metered, and is classified: transient failures (429, 5xx, timeouts, dropped
connections, bodies that do not parse or are cut short) are retried with exponential backoff and jitter,
honouring the server's ``Retry-After``; an expired token is refreshed once; anything else is raised as a
typed error carrying the API's code and message. Token requests are calls like the others
(``crm/tokens.py``): same loop, limiter, budget and meter, only without a bearer token of their own.

A call waits faults out within a time budget rather than a count of attempts: the backoff's ceiling grows
1.6 times per attempt from a second up to ``backoff_max_s`` (a minute), each wait drawn at random below it
("full jitter"), and the call gives up once its next wait would end more than ``retry_budget_s`` after its
first attempt, with the API's last answer in the error (issue 18). A run of bad luck (eleven faults in a
row at a 40 % fault rate) is waited out; a service that is down for longer than the budget is reported,
not waited on forever.

An attempt waits ``read_timeout_s`` for the server (ten seconds for a read; a minute for a write), and
four times longer after each attempt of the call that timed out, up to ten minutes: a request the server
holds on to is given up on soon, and one that is legitimately slow still completes on a later attempt.
Once an endpoint's answers are known, a read's first attempt waits less: the retransmission timeout TCP
computes from round trips (RFC 6298 §2: the smoothed round trip plus four times its variation), at least
``READ_TIMEOUT_MIN_S`` and never more than ``read_timeout_s``. A request the server holds is then sent again
after two seconds instead of ten (issue 18: the soak's 3 % of held requests cost HubSpot's lane most of its
fault-free time), and an answer slower than the estimate only costs that first attempt: the next one waits
``read_timeout_s``, and four times longer after each further timeout, as without an estimate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_never
from tenacity.stop import stop_base

from crm_pipelines.crm.budget import CallBudget
from crm_pipelines.crm.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    IncompleteBody,
    NotFoundError,
    RetriesExhausted,
    TransientError,
    WriteInDoubt,
)
from crm_pipelines.crm.metering import CallRecord, Meter
from crm_pipelines.crm.ratelimit import RateLimiter, RateLimits

log = logging.getLogger("crm_pipelines.crm")

# A call keeps retrying for RETRY_BUDGET_S in all. Fifteen minutes outlast a load balancer's restart or a
# throttling window, and a wait capped at a minute keeps the retries frequent enough to notice the API is back.
# The n-th wait is drawn uniformly from [0, min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * BACKOFF_GROWTH ** (n - 1))]:
# gRPC's retry policy (initial 1 s, multiplier 1.6) with AWS's "full jitter". Faults that come and go (a 500
# here, a dropped connection there) cost half a second on average instead of a doubling streak, clients that
# failed together do not retry together, and an outage still reaches the minute's ceiling by the tenth try.
BACKOFF_INITIAL_S = 1.0
BACKOFF_GROWTH = 1.6
BACKOFF_MAX_S = 60.0
RETRY_BUDGET_S = 900.0
# How long an attempt waits for the server: to connect, and between the bytes of its answer (not for the
# whole body, so a large page that keeps arriving is never cut). Ten seconds is what the Dataverse SDK
# allows a GET (specs/dynamics/FACTS.md A3); CRM reads answer within a few. Writes keep a minute (a batch of
# a thousand changes is slow by nature). After a timed-out attempt the next waits TIMEOUT_GROWTH times
# longer, up to TIMEOUT_MAX_S, Salesforce's own limit on a REST request (specs/salesforce/FACTS.md §4).
READ_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 60.0
TIMEOUT_GROWTH = 4.0
TIMEOUT_MAX_S = 600.0
# The shortest first-attempt wait a learned estimate may set: twice TCP's minimum retransmission timeout
# (RFC 6298 (2.4): one second), for an HTTP answer that also waits on the server's work. Answers are counted
# per endpoint once LATENCY_SAMPLES_MIN have arrived; an endpoint with fewer uses its connection's.
READ_TIMEOUT_MIN_S = 2.0
LATENCY_SAMPLES_MIN = 5
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# failures after which the API cannot have run the request: it never left (no connection, no pool slot), or
# the API turned it away before running it (throttled, unavailable); after any other the work may be done
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_RUN = frozenset({429, 503})
TIMEOUT_CODE = "TIMEOUT"


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

    def window_remaining(self, response: httpx.Response) -> tuple[int, float] | None:
        """Calls the API says its rate window has left after this answer, and that window's period in
        seconds, if it says (else None)."""
        ...


class Auth(Protocol):
    """Credentials of a connection. A login is a call through ``api`` (``crm/tokens.py``), so it is retried,
    rate limited, budgeted and metered like any other."""

    async def headers(self, api: ApiClient) -> dict[str, str]: ...

    async def refresh(self, api: ApiClient) -> None: ...

    def secrets(self) -> list[str]: ...


@dataclass(frozen=True)
class CallOptions:
    """How a call differs from a plain authenticated one; see :meth:`ApiClient.request`."""

    authenticate: bool = True
    check: Callable[[ApiResponse], Any] | None = None
    http: httpx.AsyncClient | None = None
    timeout_s: float | None = None  # this attempt's wait for the server; None: the client's default
    reads: bool = False  # the call only reads: its answers' round trips teach the read timeout


@dataclass
class ApiResponse:
    status: int
    headers: httpx.Headers
    content: bytes
    data: Any = None  # the parsed JSON body, when one was expected


class _OutOfTime(stop_base):
    """Stop when the next wait would end past the call's time budget.

    Time spent is the larger of the clock's and the waits' own account, so a test that sleeps on a virtual
    clock (``sleep=`` injected) is held to the same budget as a real run.
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s

    def __call__(self, state: RetryCallState) -> bool:
        spent = max(state.seconds_since_start or 0.0, state.idle_for)
        return spent + state.upcoming_sleep > self.budget_s


class RoundTrips:
    """Smoothed round trip and its variation, as RFC 6298 §2 keeps them (gains 1/8 and 1/4)."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def add(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds
        self.samples += 1

    def timeout(self) -> float | None:
        """SRTT + 4 RTTVAR once enough answers have been seen, else None."""
        if self.srtt is None or self.samples < LATENCY_SAMPLES_MIN:
            return None
        return self.srtt + 4 * self.rttvar


# Round trips of reads per (connection, base URL, endpoint), and per (connection, base URL, "*"): shared by
# every client of the process, like the rate windows (a Dagster step opens a client per object).
_ROUND_TRIPS: dict[tuple[str, str, str], RoundTrips] = {}


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
        read_timeout_s: float = READ_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        timeout_s: float | None = None,
        retry_budget_s: float = RETRY_BUDGET_S,
        max_attempts: int | None = None,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        learn_timeouts: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``retry_budget_s``: how long one call may keep retrying in all; ``max_attempts``: an optional cap
        on attempts besides (tests, and callers such as ``check`` that want a verdict soon).
        ``read_timeout_s`` / ``write_timeout_s``: a first attempt's wait for the server, for calls that only
        read (GET, or ``idempotent=True``) and for the others; ``timeout_s`` sets both (tests).
        ``learn_timeouts``: a read's first attempt waits what its endpoint's round trips say, at most
        ``read_timeout_s`` (False: always ``read_timeout_s``)."""
        self.connection, self.base_url, self.dialect, self.auth = connection, base_url.rstrip("/"), dialect, auth
        self.limiter = RateLimiter(limits, sleep=sleep, shared_key=(connection, self.base_url))
        self.budget = budget or CallBudget(connection)
        self.meter = meter or Meter()
        self.retry_budget_s, self.max_attempts, self.sleep = retry_budget_s, max_attempts, sleep
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.read_timeout_s = timeout_s if timeout_s is not None else read_timeout_s
        self.write_timeout_s = timeout_s if timeout_s is not None else write_timeout_s
        self.learn_timeouts = learn_timeouts
        self._random = random.Random()
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=verify,
            timeout=self.write_timeout_s,
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
        content: bytes | str | Callable[[], bytes | str] | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
        ok: tuple[int, ...] = (),
        authenticate: bool = True,
        check: Callable[[ApiResponse], Any] | None = None,
        http: httpx.AsyncClient | None = None,
        idempotent: bool | None = None,
        replay_safe: bool = True,
    ) -> ApiResponse:
        """One logical call, retried as needed. ``endpoint`` is the route template used for metering.

        ``content`` may be a function, called for each attempt (a signed assertion that must be fresh).
        ``authenticate=False``: no bearer token and no refresh on 401 (the token request itself).
        ``check`` runs inside the retry loop on each accepted answer and returns its ``data``; raising
        ``IncompleteBody`` makes the attempt a transport fault, retried. ``http``: another client for this
        call (a login host that needs its own network settings). ``idempotent``: the call only reads and
        gets the read timeout (default: GET, HEAD and OPTIONS do; a search sent as a POST says so).
        ``replay_safe=False``: sending the call twice would do its work twice (a create): a failure after which
        the API may have carried it out is not retried but raised as ``WriteInDoubt``.
        """

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hinted = getattr(error, "retry_after", None)
            return float(hinted) if hinted is not None else self._backoff(state)

        stop: stop_base = _OutOfTime(self.retry_budget_s)
        stop = stop | (stop_after_attempt(self.max_attempts) if self.max_attempts else stop_never)
        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, TransientError) and (replay_safe or not e.maybe_applied)),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda s: log.warning(
                "%s: %s failed (attempt %d), retrying in %.1f s: %s",
                self.connection,
                endpoint,
                s.attempt_number,
                s.upcoming_sleep,
                s.outcome.exception() if s.outcome else "",
            ),
        )
        reads = idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS
        call = CallOptions(authenticate, check, http, reads=reads)
        number, timed_out, started = 0, 0, time.monotonic()
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    timeout = self.attempt_timeout(endpoint, reads, timed_out)
                    try:
                        return await self._attempt(
                            method, url, endpoint, bucket, params, json, content, headers, expect_json, ok, number,
                            call=dataclasses.replace(call, timeout_s=timeout),
                        )
                    except TransientError as error:
                        if error.code == TIMEOUT_CODE:  # the next attempt waits longer for the server
                            timed_out += 1
                        raise
        except TransientError as last:
            if last.maybe_applied and not replay_safe:
                raise WriteInDoubt(self.connection, last) from None
            spent = max(time.monotonic() - started, retrying.statistics.get("idle_for", 0.0))
            raise RetriesExhausted(self.connection, number, last, spent) from None
        raise AssertionError("unreachable")

    def attempt_timeout(self, endpoint: str, reads: bool, timed_out: int) -> float:
        """How long an attempt waits for the server after ``timed_out`` attempts of its call timed out.

        A write waits ``write_timeout_s``; a read ``read_timeout_s``, or less once its endpoint's round trips
        are known (see the module's docstring). After a timeout the wait grows ``TIMEOUT_GROWTH`` times, and
        is at least what it would be without the estimate (``read_timeout_s`` after the first timeout).
        """
        configured = self.read_timeout_s if reads else self.write_timeout_s
        first = configured
        if reads and self.learn_timeouts:
            learned = self._round_trips(endpoint).timeout()
            if learned is None:
                learned = self._round_trips("*").timeout()
            if learned is not None:
                first = min(configured, max(READ_TIMEOUT_MIN_S, learned))
        if not timed_out:
            return first
        grown = max(first * TIMEOUT_GROWTH**timed_out, configured * TIMEOUT_GROWTH ** (timed_out - 1))
        return min(grown, max(TIMEOUT_MAX_S, configured))

    def _round_trips(self, endpoint: str) -> RoundTrips:
        return _ROUND_TRIPS.setdefault((self.connection, self.base_url, endpoint), RoundTrips())

    def _backoff(self, state: RetryCallState) -> float:
        """Full jitter below a ceiling that grows ``BACKOFF_GROWTH`` times per attempt, up to the cap."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * BACKOFF_GROWTH ** (state.attempt_number - 1))
        return self._random.uniform(0.0, ceiling)

    async def _attempt(
        self,
        method: str,
        url: str,
        endpoint: str,
        bucket: str,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | str | Callable[[], bytes | str] | None,
        headers: Mapping[str, str] | None,
        expect_json: bool,
        ok: tuple[int, ...],
        number: int,
        refreshed: bool = False,
        *,
        call: CallOptions = CallOptions(),  # frozen: one shared default is harmless
    ) -> ApiResponse:
        # Credentials first, outside the concurrency slot: a login is itself a call through this client, and
        # calls that all held a slot while waiting for it would leave none for it.
        sent = dict(await self.auth.headers(self)) if call.authenticate else {}
        sent.update(headers or {})
        body = orjson.dumps(json) if json is not None else (content() if callable(content) else content)
        if json is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.limiter.concurrency:
            stamps = await self.limiter.acquire(bucket)
            await self.budget.spend()
            # the budget's lease may have waited on the ledger's database: the call leaves now, and the server
            # counts it from its arrival, so the window counts it from now too (never earlier: no 429)
            self.limiter.restamp(stamps)
            started = time.perf_counter()
            try:
                try:
                    response = await (call.http or self.http).request(
                        method,
                        url,
                        params=params,
                        content=body,
                        headers=sent,
                        timeout=call.timeout_s if call.timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                    )
                finally:
                    self.limiter.complete(stamps)
            except httpx.TimeoutException as e:
                self._record(method, endpoint, "timeout", started, number)
                waited = f" after {call.timeout_s:g} s" if call.timeout_s is not None else ""
                raise self._transient(endpoint, 0, TIMEOUT_CODE, f"no answer{waited}: the request timed out",
                                      maybe_applied=not isinstance(e, _NEVER_SENT)) from None
            except (httpx.NetworkError, httpx.RemoteProtocolError) as e:
                # ReadError(''), RemoteProtocolError('peer closed connection …'): the connection died mid-call
                self._record(method, endpoint, "dropped", started, number)
                raise self._transient(endpoint, 0, "CONNECTION", f"connection failed: {type(e).__name__}",
                                      maybe_applied=not isinstance(e, _NEVER_SENT)) from None
        if call.reads:  # an answer, whatever its status: how long this endpoint takes to reply
            elapsed = time.perf_counter() - started
            self._round_trips(endpoint).add(elapsed)
            self._round_trips("*").add(elapsed)
        reported = self.dialect.window_remaining(response)
        if reported is not None:
            self.limiter.observe(bucket, *reported)
        status = response.status_code
        if status < 400 or status in ok:
            hint = self.dialect.throttle_hint(response)
            if hint:  # the window's period: held unless this process's own pacing already covers it
                self.limiter.spent(bucket, hint)
            answer = ApiResponse(status, response.headers, response.content)
            try:
                if expect_json and response.content:
                    try:
                        answer.data = orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        raise IncompleteBody("the response body is not valid JSON") from None
                if call.check is not None:
                    answer.data = call.check(answer)
            except IncompleteBody as incomplete:
                self._record(method, endpoint, "malformed", started, number)
                raise self._transient(endpoint, status, "MALFORMED", str(incomplete), maybe_applied=True) from None
            self._record(method, endpoint, status, started, number)
            return answer
        self._record(method, endpoint, status, started, number)
        if status == 401 and call.authenticate and not refreshed and self.dialect.auth_expired(response):
            await self.auth.refresh(self)
            return await self._attempt(
                method, url, endpoint, bucket, params, json, content, headers, expect_json, ok, number, True, call=call
            )
        parsed = self.dialect.parse_error(response)
        if status == 429 or status >= 500:
            retry_after = self.dialect.retry_after(response)
            # A 429 holds the whole bucket for its Retry-After: the server's window is spent for every call.
            # Unless the API's own count says otherwise: its last answers reported more calls left than this
            # process has sent since (and has in flight), so this 429 is not the window's; then only this call
            # waits its Retry-After, and the others go on at the limiter's pace (issue 18).
            if status == 429 and self.limiter.may_be_full(bucket):
                self.limiter.pause(bucket, retry_after if retry_after is not None else 1.0)
            raise self._transient(endpoint, status, parsed.code, parsed.message, parsed.correlation_id, retry_after,
                                  maybe_applied=status not in _NOT_RUN)
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
        maybe_applied: bool = False,
    ) -> TransientError:
        return TransientError(
            self.connection,
            status=status,
            endpoint=endpoint,
            code=code,
            message=self.redact(message),
            correlation_id=correlation_id,
            retry_after=retry_after,
            maybe_applied=maybe_applied,
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

"""The client-side rolling window (issue 5; HubSpot search: 5 requests per second, specs/hubspot/FACTS.md
§2): a request counts from the middle of its round trip, so slow answers do not idle the budget for a
whole round trip per window, and the server (which counted it on arrival) never sees six in a second."""

from __future__ import annotations

import asyncio

import pytest

from crm_pipelines.crm.ratelimit import RateLimiter, RateLimits, Window

SEARCH = RateLimits(buckets={"search": (Window(5, 1.0),)}, margin_s=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_window_reopens_one_period_after_the_middle_of_the_oldest_round_trip() -> None:
    clock = Clock()
    limiter = RateLimiter(SEARCH, clock=clock, sleep=clock.sleep)

    async def burst_then_one_more() -> float:
        stamps = [await limiter.acquire("search") for _ in range(5)]  # five sent together at 0 s
        clock.now += 0.4  # … answered at 0.4 s
        for sent in stamps:
            limiter.complete(sent)
        await limiter.acquire("search")
        return clock.now

    # counted from 0.2 s, the sixth goes at 1.2 s: not before the server's second has passed (it counted
    # them on arrival, between 0 and 0.4 s, no later than 0.2 s when a request travels no slower than its
    # answer), and not held to 1.4 s, one period after the answers
    assert asyncio.run(burst_then_one_more()) == pytest.approx(1.2)


TEN_SECONDLY = RateLimits(buckets={"default": (Window(4, 10.0),)}, margin_s=0.0)


def test_a_window_the_api_reports_spent_by_our_own_calls_costs_no_extra_pause() -> None:
    """Issue 17: at a steady full rate HubSpot's X-HubSpot-RateLimit-Remaining reads 0 after nearly every call.
    When this process sent the window's calls itself, the next waits only until its oldest ages out (as the
    server's does), not a whole period after the report, which would halve the rate."""
    clock = Clock()
    limiter = RateLimiter(TEN_SECONDLY, clock=clock, sleep=clock.sleep)

    async def steady() -> float:
        for call in range(4):  # one call every 2.5 s: the window of 4 in 10 s spent at the limit
            clock.now = call * 2.5
            limiter.complete(await limiter.acquire())
        limiter.spent("default", 10.0)  # the last answer (at 7.5 s) said no calls are left
        await limiter.acquire()
        return clock.now

    assert asyncio.run(steady()) == pytest.approx(10.0)  # the first call ages out; no pause to 17.5 s


def test_a_window_reported_spent_when_the_server_counted_our_oldest_call_late_costs_no_pause() -> None:
    """Issue 17 (OPS-1): a server busy with other answers counts a request when it gets to it, after the middle of its
    round trip; its window then still holds a call ours has let go, and it reports none left while we count
    one short. Our own calls explain the report: no ten-second hold (it halved the bulk import's list reads);
    the next call goes at the window's own pace, at worst meeting a 429 whose Retry-After is a second."""
    clock = Clock()
    limiter = RateLimiter(TEN_SECONDLY, clock=clock, sleep=clock.sleep)

    async def skewed() -> float:
        for call in range(4):
            clock.now = call * 2.5
            limiter.complete(await limiter.acquire())
        clock.now = 10.2  # our first call aged out 0.2 s ago; the server counted it later and still holds it
        limiter.spent("default", 10.0)
        await limiter.acquire()
        return clock.now

    assert asyncio.run(skewed()) == pytest.approx(10.2)  # not held to 20.2 s


def test_a_window_reported_spent_by_calls_we_did_not_send_holds_the_bucket() -> None:
    """Another process or app spending the account's window: only the API's report shows it, so the bucket is
    held for the window's period."""
    clock = Clock()
    limiter = RateLimiter(TEN_SECONDLY, clock=clock, sleep=clock.sleep)

    async def shared() -> float:
        limiter.complete(await limiter.acquire())
        limiter.spent("default", 10.0)
        await limiter.acquire()
        return clock.now

    assert asyncio.run(shared()) == pytest.approx(10.0)

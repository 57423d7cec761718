"""Fault injection and usage metering, shared by every sandbox.

A sync has to survive what real APIs do on a bad day: throttling, 5xx from a load balancer, requests that
hang, connections cut mid-response, truncated bodies and slow answers. The middleware here produces each
of those for real on the wire (a dropped connection is a closed socket, a timeout is a response that does
not come), so a client's retry logic is exercised against the genuine failure and not a mock of it.
Each CRM supplies how its own errors look (``FaultBodies``); the mechanics are the same for all.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/__sandbox__"


class FaultConfig(BaseModel):
    """What the sandbox does wrong, and how fast it lets clients go. Rates are probabilities per request."""

    model_config = ConfigDict(extra="forbid")

    rate_429: float = Field(0.0, ge=0, le=1, description="throttled with the API's own 429 body")
    rate_500: float = Field(0.0, ge=0, le=1)
    rate_502: float = Field(0.0, ge=0, le=1)
    rate_503: float = Field(0.0, ge=0, le=1)
    rate_timeout: float = Field(0.0, ge=0, le=1, description="no answer for timeout_seconds")
    rate_drop: float = Field(0.0, ge=0, le=1, description="connection closed mid-response")
    rate_malformed: float = Field(0.0, ge=0, le=1, description="200 with a truncated JSON body")
    latency_ms: int = Field(0, ge=0, description="added to every API call")
    timeout_seconds: float = Field(30.0, gt=0, description="how long a 'timeout' fault holds the request")
    rate_limits_enabled: bool = Field(True, description="false lifts the API's rate limits entirely")
    rate_limit_multiplier: float = Field(
        1.0, gt=0, description="scales every published rate limit (0.1 = a tenth of the real allowance)"
    )
    daily_limit: int | None = Field(
        None, ge=1, description="replaces the API's daily allocation (to reach it in a test)"
    )
    path_prefix: str | None = Field(None, description="only API paths starting with this get faults")
    seed: int | None = Field(None, description="makes the sequence of injected faults reproducible")

    def kinds(self) -> list[tuple[str, float]]:
        return [
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("502", self.rate_502),
            ("503", self.rate_503),
            ("timeout", self.rate_timeout),
            ("drop", self.rate_drop),
            ("malformed", self.rate_malformed),
        ]


class FaultBodies(Protocol):
    """How one CRM's API answers when throttled or broken."""

    def throttled(self, request: Request) -> Response: ...

    def server_error(self, request: Request, status: int) -> Response: ...


class DroppedConnection(Exception):
    """Raised after a partial response so the server closes the socket, as a dying proxy would."""


class _QuietDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDroppedConnections())


class FaultState:
    """The live fault configuration and the per-endpoint call counter of one sandbox."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()
        self.usage: Counter[str] = Counter()

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def draw(self, path: str) -> str | None:
        prefix = self.config.path_prefix
        if prefix and not path.startswith(prefix):
            return None
        roll = self._rng.random()
        for kind, rate in self.config.kinds():
            if roll < rate:
                return kind
            roll -= rate
        return None


def endpoint_name(router: Router, scope: Scope) -> str:
    """``GET /crm/v3/objects/{object_type}``: the route template, so usage groups by endpoint, not id."""
    for route in router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    return f"{scope['method']} {scope['path']}"


class FaultInjectionMiddleware:
    def __init__(self, app: ASGIApp, router: Router, state: FaultState, bodies: FaultBodies) -> None:
        self.app = app
        self.router = router
        self.state = state
        self.bodies = bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        self.state.usage[endpoint_name(self.router, scope)] += 1
        config = self.state.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        kind = self.state.draw(scope["path"])
        if kind is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if kind == "429":
            await self.bodies.throttled(request)(scope, receive, send)
        elif kind in ("500", "502", "503"):
            await self.bodies.server_error(request, int(kind))(scope, receive, send)
        elif kind == "timeout":
            await asyncio.sleep(config.timeout_seconds)
            await self.bodies.server_error(request, 504)(scope, receive, send)
        elif kind == "drop":
            await _drop(send)
        elif kind == "malformed":
            await self.app(scope, receive, _truncating(send))


async def _drop(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"results": [', "more_body": True})
    raise DroppedConnection


def _truncating(send: Send) -> Callable[[Message], Awaitable[None]]:
    """Pass the status through, but cut the body in half (with a matching Content-Length)."""
    start: dict = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": cut})

    return wrapped

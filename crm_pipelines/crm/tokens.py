"""Logins: the token request as an API call like any other, and one login per credential per process.

A token request goes through the connection's ``ApiClient`` (``crm/http.py``): the same retries, backoff,
``Retry-After``, rate limiter, 24 h call budget and meter as a data call (DESIGN invariant 3). What is
special about it is what counts as an answer:

- 200 with a JSON object carrying the fields every token response has (``access_token``, and Salesforce's
  ``instance_url``): a token.
- 400/401 whose body is a JSON object (the OAuth ``{"error", "error_description"}``, HubSpot's
  ``{"status", "message"}``): a refusal, raised at once as ``AuthenticationError`` with the API's reason.
- Everything else is a transport fault and retried: 429, 5xx, timeouts, dropped connections, and a body
  that does not parse or lacks the token (cut short on the way: a truncated refusal is read again too).

Tokens are kept in :data:`TOKENS`, in this process's memory only (never on disk, in logs or in the state
database: OPS-3, invariant 5), under a digest of everything that identifies the login, secret included, so
a wrong secret never borrows another login's token. Every client of the process that logs in with the same
credentials reuses the token while it is valid (the extract opens a client per object: without this each
object logged in again) and a 401 from a data call replaces it for all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import orjson

from crm_pipelines.crm.errors import AuthenticationError, IncompleteBody

if TYPE_CHECKING:
    from crm_pipelines.crm.http import ApiClient, ApiResponse

REFUSALS = (400, 401)  # what a token endpoint answers a wrong secret, grant or client with (RFC 6749 §5.2)


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    expires_at: float | None = None  # on the issuing login's clock; None: valid until the API refuses it
    instance_url: str | None = None  # Salesforce: the org's API host, learnt at login


class TokenCache:
    """Tokens by login, for every client and event loop of this process.

    Locks are per event loop (an ``asyncio.Lock`` belongs to one): the calls of one loop that need a login
    together wait for one request. Two threads logging in at the same instant may both do so; the later
    token wins, and both are valid.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self.logins: Counter[str] = Counter()  # tokens obtained from a token endpoint, per connection

    def get(self, key: str) -> Token | None:
        with self._guard:
            return self._tokens.get(key)

    def put(self, key: str, token: Token, connection: str) -> None:
        with self._guard:
            self._tokens[key] = token
            self.logins[connection] += 1

    def discard(self, key: str, token: Token | None) -> None:
        """Forget ``token`` (refused by the API), unless another login has replaced it already."""
        with self._guard:
            if token is not None and self._tokens.get(key) == token:
                del self._tokens[key]

    def lock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()
            self.logins.clear()


TOKENS = TokenCache()


def login_key(*parts: str | None) -> str:
    """A digest of what identifies a login (token URL, grant, client id, secret, scope …); only the digest
    is kept, so the key itself carries no secret."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"\0" if part is None else part.encode() + b"\1")
    return digest.hexdigest()


@dataclass(frozen=True)
class Refusal:
    """A token endpoint's refusal, as the API put it."""

    status: int
    body: dict[str, Any]


def _token_answer(required: tuple[str, ...]) -> Callable[[ApiResponse], dict[str, Any] | Refusal]:
    def check(response: ApiResponse) -> dict[str, Any] | Refusal:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status in REFUSALS:
            if isinstance(body, dict):
                return Refusal(response.status, body)
            if _says_json(response.headers):
                raise IncompleteBody("the token endpoint's refusal was cut short")
            return Refusal(response.status, {})  # a refusal, though not in OAuth's words (a proxy's page)
        if not isinstance(body, dict):
            raise IncompleteBody("the token response is not a JSON object (cut short?)")
        missing = [name for name in required if not body.get(name)]
        if missing:
            raise IncompleteBody(f"the token response lacks {', '.join(missing)}")
        return body

    return check


def _says_json(headers: httpx.Headers) -> bool:
    return "json" in headers.get("content-type", "").lower()


async def request_token(
    api: ApiClient,
    url: str,
    form: Callable[[], Mapping[str, str]],
    *,
    endpoint: str,
    refused: Callable[[Refusal], AuthenticationError],
    required: tuple[str, ...] = ("access_token",),
    http: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """POST the form to a token endpoint through ``api``'s retry loop; the token response's JSON body.

    ``form`` is called for each attempt (a JWT assertion is signed afresh, so a long wait never sends an
    expired one). A refusal becomes ``refused(…)``, raised at once; ``RetriesExhausted`` when the endpoint
    kept failing for the whole retry budget.
    """
    answer = await api.request(
        "POST",
        url,
        endpoint=endpoint,
        content=lambda: urlencode(dict(form())),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        expect_json=False,
        ok=REFUSALS,
        authenticate=False,
        check=_token_answer(required),
        http=http,
        idempotent=True,  # asking again only issues another token: a login waits like a read
    )
    if isinstance(answer.data, Refusal):
        raise refused(answer.data)
    return answer.data


class CachedLogin:
    """What the OAuth logins share: the token kept in :data:`TOKENS`, renewed ``renew_before_s`` before it
    expires (on ``clock``), or at once when a data call meets a 401 with it.

    Subclasses say what identifies the login (:meth:`_identity`, secrets included: only a digest is kept)
    and how to get a token (:meth:`_login`, through :func:`request_token`).
    """

    renew_before_s = 0.0

    def __init__(self, connection: str, clock: Callable[[], float] = time.time) -> None:
        self.connection, self.clock = connection, clock
        self._token: Token | None = None
        self.logins = 0  # tokens this object obtained from the token endpoint (not those it reused)

    def _identity(self) -> tuple[str | None, ...]:
        raise NotImplementedError

    async def _login(self, api: ApiClient) -> Token:
        raise NotImplementedError

    def _valid(self, token: Token) -> bool:
        return token.expires_at is None or self.clock() < token.expires_at - self.renew_before_s

    async def token(self, api: ApiClient) -> Token:
        """A valid token: this client's, another client's of the same login, or a new one."""
        if self._token is None or not self._valid(self._token):
            await self._obtain(api, stale=self._token)
        assert self._token is not None
        return self._token

    async def headers(self, api: ApiClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {(await self.token(api)).access_token}"}

    async def refresh(self, api: ApiClient) -> None:
        """The API refused the token (401): replace it, unless another call already has."""
        await self._obtain(api, stale=self._token)

    async def _obtain(self, api: ApiClient, stale: Token | None) -> None:
        key = login_key(*self._identity())
        async with TOKENS.lock(key):
            cached = TOKENS.get(key)
            if cached is not None and cached != stale and self._valid(cached):
                self._token = cached  # logged in meanwhile, by another call or client of this process
                return
            TOKENS.discard(key, stale)
            token = await self._login(api)
            TOKENS.put(key, token, self.connection)
            self._token = token
            self.logins += 1

    def _access_token(self) -> list[str]:
        return [self._token.access_token] if self._token is not None else []


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

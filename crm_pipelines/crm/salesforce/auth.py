"""Salesforce OAuth 2.0: client credentials, JWT bearer, refresh token, or a session id given as is.

Each flow logs in on the production or the sandbox login host (SPEC OPS-3: ``login: production|sandbox``,
the URL overridable, e.g. by a My Domain) and learns the org's ``instance_url`` from the token response
(FACTS §2). Salesforce sessions carry no expiry time; they end after inactivity, and the API then answers
401 ``INVALID_SESSION_ID``, on which the shared HTTP layer calls :meth:`refresh`: a new login.

A login is an API call through the connection's client (``crm/tokens.py``): a 5xx, a throttle, a timeout, a
dropped connection or a body cut short is retried like any call; only the token endpoint's OAuth refusal
(``invalid_grant``, ``invalid_client`` …) is an ``AuthenticationError``, raised at once. The session is
shared by every client of the process that logs in with the same credentials (issue 18).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import httpx
import jwt

from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.tokens import CachedLogin, Refusal, Token, redact, request_token

if TYPE_CHECKING:
    from crm_pipelines.crm.http import ApiClient

LOGIN_HOSTS = {"production": "https://login.salesforce.com", "sandbox": "https://test.salesforce.com"}
Login = Literal["production", "sandbox"]
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_S = 180  # Salesforce accepts assertions valid for at most 3 minutes


def login_url(login: Login = "production", override: str | None = None) -> str:
    """The login host for ``login`` (production orgs vs sandbox orgs), or the configured override."""
    if override:
        return override.rstrip("/")
    try:
        return LOGIN_HOSTS[login]
    except KeyError:
        raise ValueError(f"login must be 'production' or 'sandbox', not {login!r}") from None


class SessionToken:
    """A session id handed over as is (the sandbox's announced token): no login, so no re-login either."""

    def __init__(self, access_token: str, instance_url: str) -> None:
        self._token, self.instance_url = access_token, instance_url.rstrip("/")

    async def ensure(self, api: ApiClient) -> str:
        return self.instance_url

    async def headers(self, api: ApiClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self, api: ApiClient) -> None:
        """Nothing to renew with: the retried call gets the 401 again and it is raised."""

    def secrets(self) -> list[str]:
        return [self._token]


class OAuthLogin(CachedLogin):
    """What the three OAuth flows share: the token request, the session, the instance URL."""

    endpoint = f"POST {TOKEN_PATH}"

    def __init__(self, connection: str, login: Login, login_url_override: str | None, http: httpx.AsyncClient | None):
        super().__init__(connection)
        self.login = login
        self.token_url = login_url(login, login_url_override) + TOKEN_PATH
        # The login host may need other network settings than the instance (a proxy, another CA).
        self._own_http = http

    def _form(self) -> dict[str, str]:
        raise NotImplementedError

    def _secrets(self) -> list[str]:
        raise NotImplementedError

    @property
    def instance_url(self) -> str | None:
        return self._token.instance_url if self._token is not None else None

    async def ensure(self, api: ApiClient) -> str:
        """Log in unless a session is open; returns the instance URL."""
        instance = (await self.token(api)).instance_url
        assert instance is not None
        return instance

    async def _login(self, api: ApiClient) -> Token:
        body = await request_token(
            api,
            self.token_url,
            self._form,
            endpoint=self.endpoint,
            refused=self._refused,
            required=("access_token", "instance_url"),
            http=self._own_http,
        )
        return Token(str(body["access_token"]), None, str(body["instance_url"]).rstrip("/"))

    def _refused(self, refusal: Refusal) -> AuthenticationError:
        body = refusal.body
        message = str(body.get("error_description") or "the OAuth token request was refused")
        return AuthenticationError(
            self.connection,
            status=refusal.status,
            endpoint=self.endpoint,
            code=body.get("error"),
            message=f"{redact(message, self.secrets())} (login host {self.token_url.removesuffix(TOKEN_PATH)})",
        )

    def secrets(self) -> list[str]:
        return [s for s in (*self._secrets(), *self._access_token()) if s]


class ClientCredentials(OAuthLogin):
    """Client-credentials flow of a connected app (runs as the app's configured user; needs a My Domain)."""

    def __init__(
        self,
        connection: str,
        client_id: str,
        client_secret: str,
        *,
        login: Login = "production",
        login_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(connection, login, login_url, http)
        self._client_id, self._client_secret = client_id, client_secret

    def _form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}

    def _identity(self) -> tuple[str | None, ...]:
        return (self.token_url, "client_credentials", self._client_id, self._client_secret)

    def _secrets(self) -> list[str]:
        return [self._client_secret]


class RefreshToken(OAuthLogin):
    """Trades a refresh token (from a one-time web-server flow) for sessions."""

    def __init__(
        self,
        connection: str,
        client_id: str,
        refresh_token: str,
        client_secret: str | None = None,
        *,
        login: Login = "production",
        login_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(connection, login, login_url, http)
        self._client_id, self._refresh_token, self._client_secret = client_id, refresh_token, client_secret

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "refresh_token", "client_id": self._client_id, "refresh_token": self._refresh_token}
        if self._client_secret:
            form["client_secret"] = self._client_secret
        return form

    def _identity(self) -> tuple[str | None, ...]:
        return (self.token_url, "refresh_token", self._client_id, self._refresh_token, self._client_secret)

    def _secrets(self) -> list[str]:
        return [s for s in (self._refresh_token, self._client_secret) if s]


class JwtBearer(OAuthLogin):
    """JWT bearer flow: an assertion signed with the connected app's certificate key (RS256, PyJWT).

    The assertion's audience is the login host of the org kind, ``https://login.salesforce.com`` or
    ``https://test.salesforce.com``, even when the token request goes to an overriding My Domain URL.
    """

    def __init__(
        self,
        connection: str,
        client_id: str,
        username: str,
        private_key_pem: str,
        *,
        login: Login = "production",
        login_url: str | None = None,
        audience: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(connection, login, login_url, http)
        self._client_id, self._username, self._key = client_id, username, private_key_pem
        self.audience = audience or LOGIN_HOSTS[login]
        self._assertion: str | None = None

    def assertion(self, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {"iss": self._client_id, "sub": self._username, "aud": self.audience, "exp": issued + JWT_LIFETIME_S}
        self._assertion = jwt.encode(claims, self._key, algorithm="RS256")
        return self._assertion

    def _form(self) -> dict[str, str]:
        return {"grant_type": JWT_GRANT, "assertion": self.assertion()}

    def _identity(self) -> tuple[str | None, ...]:
        return (self.token_url, JWT_GRANT, self._client_id, self._username, self.audience, self._key)

    def _secrets(self) -> list[str]:
        # the PEM line by line too: a message quoting part of the key must not leak that part
        lines = [line for line in self._key.splitlines() if len(line) > 16 and "-----" not in line]
        return [self._key, *lines, *([self._assertion] if self._assertion else [])]


def make_auth(
    connection: str,
    *,
    client_id: str | None,
    client_secret: str | None = None,
    username: str | None = None,
    private_key_pem: str | None = None,
    refresh_token: str | None = None,
    login: Login = "production",
    login_url: str | None = None,
) -> JwtBearer | RefreshToken | ClientCredentials:
    """The flow the given secrets allow: JWT bearer (username + key), refresh token, or client credentials.

    Raises ``ValueError`` naming what is missing (never a value), for the settings check (OPS-3).
    """
    if not client_id:
        raise ValueError(f"{connection}: the connected app's client id (consumer key) is not set")
    where = {"login": login, "login_url": login_url}
    if username and private_key_pem:
        return JwtBearer(connection, client_id, username, private_key_pem, **where)  # type: ignore[arg-type]
    if refresh_token:
        return RefreshToken(connection, client_id, refresh_token, client_secret, **where)  # type: ignore[arg-type]
    if client_secret:
        return ClientCredentials(connection, client_id, client_secret, **where)  # type: ignore[arg-type]
    raise ValueError(
        f"{connection}: no Salesforce login possible — set a username and private key (JWT bearer), a refresh "
        "token, or a client secret (client credentials)"
    )

"""HubSpot authentication: a private-app token, or OAuth with a refresh token.

The OAuth refresh is an API call like any other, through the connection's client (``crm/tokens.py``):
retried on 429, 5xx, timeouts, dropped connections and bodies cut short; only HubSpot's refusal (400 with
``BAD_REFRESH_TOKEN``, ``BAD_CLIENT_ID`` …) is an ``AuthenticationError``, raised at once. The access token
is shared by the process's clients of the same app and refresh token until it nears expiry (issue 18).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.tokens import CachedLogin, Refusal, Token, redact, request_token

if TYPE_CHECKING:
    from crm_pipelines.crm.http import ApiClient

ENDPOINT = "POST /oauth/v1/token"
RENEW_BEFORE_S = 60.0


class PrivateAppToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def headers(self, api: ApiClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self, api: ApiClient) -> None:
        """Private-app tokens do not expire; a 401 is final."""

    def secrets(self) -> list[str]:
        return [self._token]


class OAuthRefreshToken(CachedLogin):
    """Trades the refresh token for short-lived access tokens, renewed before they expire or on a 401."""

    renew_before_s = RENEW_BEFORE_S

    def __init__(
        self,
        connection: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(connection, clock)
        self.token_url = token_url
        self._client_id, self._client_secret, self._refresh_token = client_id, client_secret, refresh_token

    def _identity(self) -> tuple[str | None, ...]:
        return (self.token_url, "refresh_token", self._client_id, self._client_secret, self._refresh_token)

    def _form(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }

    async def _login(self, api: ApiClient) -> Token:
        body = await request_token(api, self.token_url, self._form, endpoint=ENDPOINT, refused=self._refused)
        return Token(str(body["access_token"]), self.clock() + float(body.get("expires_in") or 1800))

    def _refused(self, refusal: Refusal) -> AuthenticationError:
        body = refusal.body
        return AuthenticationError(
            self.connection,
            status=refusal.status,
            endpoint=ENDPOINT,
            code=body.get("status") or body.get("category") or body.get("error"),
            message=redact(
                str(body.get("message") or body.get("error_description") or "the OAuth token request was refused"),
                self.secrets(),
            ),
            correlation_id=body.get("correlationId"),
        )

    def secrets(self) -> list[str]:
        return [s for s in (self._client_secret, self._refresh_token, *self._access_token()) if s]

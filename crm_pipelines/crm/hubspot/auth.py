"""HubSpot authentication: a private-app token, or OAuth with a refresh token."""

from __future__ import annotations

import time

import httpx
import orjson

from crm_pipelines.crm.errors import AuthenticationError


class PrivateAppToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self, http: httpx.AsyncClient) -> None:
        """Private-app tokens do not expire; a 401 is final."""

    def secrets(self) -> list[str]:
        return [self._token]


class OAuthRefreshToken:
    """Trades the refresh token for short-lived access tokens, renewed before they expire or on a 401."""

    def __init__(self, connection: str, token_url: str, client_id: str, client_secret: str, refresh_token: str) -> None:
        self.connection, self.token_url = connection, token_url
        self._client_id, self._client_secret, self._refresh_token = client_id, client_secret, refresh_token
        self._access: str | None = None
        self._expires_at = 0.0

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._access is None or time.time() > self._expires_at - 60:
            await self.refresh(http)
        return {"Authorization": f"Bearer {self._access}"}

    async def refresh(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            self.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": self._refresh_token,
            },
        )
        if response.status_code != 200:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = {}
            raise AuthenticationError(
                self.connection,
                status=response.status_code,
                endpoint="POST /oauth/v1/token",
                code=body.get("status") or body.get("category"),
                message=str(body.get("message", "the OAuth token request was refused")),
            )
        body = orjson.loads(response.content)
        self._access = body["access_token"]
        self._expires_at = time.time() + float(body.get("expires_in") or 1800)

    def secrets(self) -> list[str]:
        return [s for s in (self._client_secret, self._refresh_token, self._access) if s]

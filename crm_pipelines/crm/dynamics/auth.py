"""Microsoft Entra ID client credentials for the Dataverse Web API (FACTS §B).

``POST {authority}/{tenant}/oauth2/v2.0/token`` with the app's id and secret and ``scope=<org url>/.default``
gives a bearer token for about an hour. It is cached, renewed a few minutes before it runs out, and renewed
at once when the Web API answers 401 (revoked, or the clocks disagree).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import orjson

from crm_pipelines.crm.errors import AuthenticationError

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# Renew this long before expiry, so a request never leaves with a token that dies on the way.
RENEW_BEFORE_S = 300.0
TOKEN_ATTEMPTS = 5


def token_url(authority_url: str, tenant_id: str) -> str:
    return f"{authority_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"


def default_scope(org_url: str) -> str:
    return f"{org_url.rstrip('/')}/.default"


class ClientCredentials:
    def __init__(
        self,
        connection: str,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        org_url: str,
        authority_url: str = DEFAULT_AUTHORITY,
        scope: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.token_url = token_url(authority_url, tenant_id)
        self.scope = scope or default_scope(org_url)
        self._client_id, self._client_secret = client_id, client_secret
        self._access: str | None = None
        self._expires_at = 0.0
        self.clock = clock
        self.issued = 0  # tokens fetched, for tests and run metadata
        self._lock = asyncio.Lock()

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._access is None or self.clock() > self._expires_at - RENEW_BEFORE_S:
            stale = self._access
            async with self._lock:  # concurrent requests share one renewal
                if self._access == stale:
                    await self._fetch(http)
        return {"Authorization": f"Bearer {self._access}"}

    async def refresh(self, http: httpx.AsyncClient) -> None:
        stale = self._access
        async with self._lock:
            if self._access == stale:  # another request may have renewed it meanwhile
                await self._fetch(http)

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": self.scope,
        }
        for attempt in range(TOKEN_ATTEMPTS):
            # The identity endpoint has bad moments too: 429/5xx and broken connections are retried here,
            # a refusal (4xx) is final.
            try:
                response = await http.post(self.token_url, data=form)
            except httpx.TransportError:
                if attempt == TOKEN_ATTEMPTS - 1:
                    raise AuthenticationError(
                        self.connection,
                        status=0,
                        endpoint="POST /{tenant}/oauth2/v2.0/token",
                        code="CONNECTION",
                        message="the token endpoint could not be reached",
                    ) from None
            else:
                if not (response.status_code == 429 or response.status_code >= 500) or attempt == TOKEN_ATTEMPTS - 1:
                    break
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            body = body if isinstance(body, dict) else {}
            codes = body.get("error_codes") or []
            code = body.get("error") or "token_request_failed"
            if codes:
                code = f"{code}/AADSTS{codes[0]}"
            raise AuthenticationError(
                self.connection,
                status=response.status_code,
                endpoint="POST /{tenant}/oauth2/v2.0/token",
                code=code,
                # Entra's description names the app id at most, never the secret; redacted anyway
                message=self._redact(str(body.get("error_description") or "the token request was refused")),
                correlation_id=body.get("correlation_id"),
            )
        self._access = body["access_token"]
        self._expires_at = self.clock() + float(body.get("expires_in") or 3599)
        self.issued += 1

    def _redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def secrets(self) -> list[str]:
        return [s for s in (self._client_secret, self._access) if s]

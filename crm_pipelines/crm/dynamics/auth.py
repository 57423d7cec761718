"""Microsoft Entra ID client credentials for the Dataverse Web API (FACTS §B).

``POST {authority}/{tenant}/oauth2/v2.0/token`` with the app's id and secret and ``scope=<org url>/.default``
gives a bearer token for about an hour. It is kept for every client of the process (``crm/tokens.py``),
renewed a few minutes before it runs out, and renewed at once when the Web API answers 401 (revoked, or the
clocks disagree).

The token request is an API call like any other, through the connection's client: a 429, a 5xx, a timeout,
a dropped connection or a 200 whose body does not parse is retried within the call's time budget; only
Entra's refusal (400/401 with its error body: ``invalid_client``, ``unauthorized_client`` …) is an
``AuthenticationError``, raised at once with Entra's code and description (issue 18).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crm_pipelines.crm.errors import AuthenticationError
from crm_pipelines.crm.tokens import CachedLogin, Refusal, Token, redact, request_token

if TYPE_CHECKING:
    from crm_pipelines.crm.http import ApiClient

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# Renew this long before expiry, so a request never leaves with a token that dies on the way.
RENEW_BEFORE_S = 300.0
ENDPOINT = "POST /{tenant}/oauth2/v2.0/token"


def token_url(authority_url: str, tenant_id: str) -> str:
    return f"{authority_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"


def default_scope(org_url: str) -> str:
    return f"{org_url.rstrip('/')}/.default"


class ClientCredentials(CachedLogin):
    renew_before_s = RENEW_BEFORE_S

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
        super().__init__(connection, clock)
        self.token_url = token_url(authority_url, tenant_id)
        self.scope = scope or default_scope(org_url)
        self._client_id, self._client_secret = client_id, client_secret

    @property
    def issued(self) -> int:
        """Tokens this object fetched (tests, run metadata); one reused from another client is not counted."""
        return self.logins

    def _identity(self) -> tuple[str | None, ...]:
        return (self.token_url, "client_credentials", self._client_id, self._client_secret, self.scope)

    def _form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": self.scope,
        }

    async def _login(self, api: ApiClient) -> Token:
        body = await request_token(api, self.token_url, self._form, endpoint=ENDPOINT, refused=self._refused)
        return Token(str(body["access_token"]), self.clock() + float(body.get("expires_in") or 3599))

    def _refused(self, refusal: Refusal) -> AuthenticationError:
        body = refusal.body
        codes = body.get("error_codes") or []
        code = str(body.get("error") or "token_request_refused")
        if codes:
            code = f"{code}/AADSTS{codes[0]}"
        return AuthenticationError(
            self.connection,
            status=refusal.status,
            endpoint=ENDPOINT,
            code=code,
            # Entra's description names the app id at most, never the secret; redacted anyway
            message=redact(str(body.get("error_description") or "the token request was refused"), self.secrets()),
            correlation_id=body.get("correlation_id"),
        )

    def secrets(self) -> list[str]:
        return [s for s in (self._client_secret, *self._access_token()) if s]

"""Microsoft Entra ID's client-credentials token endpoint, and bearer checks on the Web API (FACTS §B).

``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, the app's id and secret and
``scope=<org url>/.default`` answers ``{"token_type": "Bearer", "expires_in": 3599, …}``; errors carry
Entra's ``AADSTS`` codes. The Web API answers 401 with a ``WWW-Authenticate`` challenge, and no body, for a
missing, unknown or expired token.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crm_pipelines.sandbox.dynamics.store import DynamicsStore

TOKEN_LIFETIME_S = 3599


def new_app() -> dict[str, str]:
    return {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()),
            "client_secret": "sbx~" + secrets.token_urlsafe(30)}


def issue(store: DynamicsStore, client_id: str, lifetime_s: float = TOKEN_LIFETIME_S) -> str:
    # Real tokens are JWTs; clients treat them as opaque, so a random string keeps the contract.
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0." + secrets.token_urlsafe(48)
    store.put_token(token, client_id, time.time() + lifetime_s)
    return token


def _entra_error(status: int, error: str, code: int, description: str) -> Response:
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC)
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} "
                                 f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        status_code=status,
    )


async def token_endpoint(request: Request, store: DynamicsStore, org_url: str) -> Response:
    app = store.get_meta("app")
    form = await request.form()
    tenant = request.path_params["tenant"]
    if tenant != app["tenant_id"]:
        return _entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    if form.get("grant_type") != "client_credentials":
        return _entra_error(400, "unsupported_grant_type", 70003,
                            "The app requested an unsupported grant type 'client_credentials' only is enabled.")
    if form.get("client_id") != app["client_id"]:
        return _entra_error(400, "unauthorized_client", 700016,
                            f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
    if form.get("client_secret") != app["client_secret"]:
        return _entra_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
    scope = str(form.get("scope") or "")
    if not scope_matches(scope, org_url):
        return _entra_error(400, "invalid_scope", 70011,
                            f"The provided value for the input parameter 'scope' is not valid. "
                            f"The scope {scope} is not valid.")
    token = issue(store, app["client_id"])
    return JSONResponse({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S,
                         "ext_expires_in": TOKEN_LIFETIME_S, "access_token": token})


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port made explicit; None when not a URL."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def scope_matches(scope: str, org_url: str) -> bool:
    """``<org url>/.default``: host case-insensitive, the default port written or not
    (``https://host/.default`` = ``https://host:443/.default``), a doubled slash tolerated (FACTS K)."""
    resource, sep, suffix = scope.strip().rstrip("/").rpartition("/")
    if not sep or suffix != ".default":
        return False
    wanted = _origin(org_url)
    return wanted is not None and _origin(resource.rstrip("/")) == wanted and urlsplit(
        resource.rstrip("/")).path in ("", "/")


def challenge(tenant_id: str, org_url: str, reason: str) -> Response:
    header = (f'Bearer error=invalid_token, error_description="{reason}", '
              f"authorization_uri=https://login.microsoftonline.com/{tenant_id}/oauth2/authorize, "
              f"resource_id={org_url}")
    return Response(status_code=401, headers={"WWW-Authenticate": header})


def authenticate(store: DynamicsStore, request: Request, org_url: str) -> tuple[str | None, Response | None]:
    """(user, None) for a valid bearer token, else (None, the 401 to send)."""
    app = store.get_meta("app")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, challenge(app["tenant_id"], org_url, "Bearer token is missing.")
    found = store.token(token.strip())
    if found is None:
        return None, challenge(app["tenant_id"], org_url, "Error identified in Payload provided by the user. "
                                                          "Error Details: The token is not valid.")
    if found[1] <= time.time():
        return None, challenge(app["tenant_id"], org_url, "Error identified in Payload provided by the user. "
                                                          "Error Details: The token is expired.")
    return found[0], None

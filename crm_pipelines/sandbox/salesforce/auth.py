"""OAuth 2.0 token endpoint and session checks (FACTS §2, §3).

The same server answers the production (``login``) and sandbox (``test``) login hosts and a My Domain: a
client that switches hosts reaches the same token endpoint, and the JWT's ``aud`` may name either host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import Response

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.catalog import ORG_ID
from crm_pipelines.sandbox.salesforce.store import SalesforceStore

SESSION_SECONDS = 2 * 3600  # the org's default session timeout
LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def new_session_token() -> str:
    # Real access tokens are the 15-char org id, "!", then an opaque string.
    return f"{ORG_ID[:15]}!AQ{secrets.token_urlsafe(72)}"


def issue_connected_app(store: SalesforceStore) -> dict[str, Any]:
    """The connected app: consumer key and secret, a JWT certificate key pair, a refresh token."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    app = {
        "consumer_key": "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "B"),
        "consumer_secret": secrets.token_hex(32).upper(),
        "private_key": private_pem,
        "public_key": public_pem,
    }
    store.set_meta("connected_app", app)
    return app


@dataclass
class TokenEndpoint:
    store: SalesforceStore
    base_url: str = ""

    def app(self) -> dict[str, Any]:
        return self.store.get_meta("connected_app")

    def api_user(self) -> str:
        return self.store.get_meta("credentials")["user_id"]

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        grant = str(form.get("grant_type", ""))
        app = self.app()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return _oauth_error("invalid_client", "invalid client credentials")
        if grant == "client_credentials":
            if client_id != app["consumer_key"]:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != app["consumer_secret"]:
                return _oauth_error("invalid_client", "invalid client credentials")
            return self._grant(self.api_user(), refresh=False)
        if grant == JWT_GRANT:
            return self._jwt(str(form.get("assertion", "")), app)
        if grant == "refresh_token":
            if client_id != app["consumer_key"]:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret is not None and client_secret != app["consumer_secret"]:
                return _oauth_error("invalid_client", "invalid client credentials")
            found = self.store.token(str(form.get("refresh_token", "")))
            if found is None or found[0] != "refresh":
                return _oauth_error("invalid_grant", "expired access/refresh token")
            return self._grant(found[1], refresh=False)
        if not grant:
            return _oauth_error("invalid_request", "must provide grant_type")
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def _jwt(self, assertion: str, app: dict[str, Any]) -> Response:
        try:
            claims = jwt.decode(
                assertion, app["public_key"], algorithms=["RS256"],
                audience=[*LOGIN_HOSTS, self.base_url], options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims["iss"] != app["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        user = self.store.find_by("User", "Username", claims["sub"], limit=1)
        if not user:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._grant(user[0]["Id"], refresh=False)

    def _grant(self, user_id: str, *, refresh: bool) -> Response:
        token = new_session_token()
        issued = int(time.time() * 1000)
        self.store.put_token(token, "access", user_id, issued + SESSION_SECONDS * 1000, None)
        identity = f"{LOGIN_HOSTS[0]}/id/{ORG_ID}/{user_id}"
        secret = self.app()["consumer_secret"].encode()
        signature = base64.b64encode(
            hmac.new(secret, f"{identity}{issued}".encode(), hashlib.sha256).digest()
        ).decode()
        body = {
            "access_token": token, "signature": signature, "scope": "api", "instance_url": self.base_url,
            "id": identity, "token_type": "Bearer", "issued_at": str(issued),
        }
        return errors.json_response(body)


def _oauth_error(code: str, description: str) -> Response:
    return errors.json_response({"error": code, "error_description": description}, 400)


def authenticate(store: SalesforceStore, request: Request) -> str:
    """The User id behind the bearer token; raises 401 INVALID_SESSION_ID otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "oauth") or not token:
        raise errors.invalid_session()
    found = store.token(token.strip())
    if found is None or found[0] != "access":
        raise errors.invalid_session()
    _, user_id, expires_ms = found
    if expires_ms is not None and expires_ms <= int(time.time() * 1000):
        raise errors.invalid_session()
    return user_id

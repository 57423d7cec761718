"""Issue 16, Dynamics: the org URL is a setting of the sandbox, and token scopes match it as Entra ID does.

Wire-level over HTTP against a sandbox started with ``--dynamics-org-url`` (FACTS K and B are sections of
shared/specs/dynamics/FACTS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox

ORG = "https://contoso.crm.dynamics.com"


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    sandbox = start_sandbox(Path(tmp_path_factory.mktemp("dynamics-contoso")), "--dynamics-org-url", ORG + "/",
                            crm="dynamics", scale=100)
    yield sandbox
    sandbox.stop()


def token(sandbox: RunningSandbox, scope: str) -> httpx.Response:
    creds = sandbox.credentials
    return httpx.post(creds["token_url"], data={"grant_type": "client_credentials", "client_id": creds["client_id"],
                                                "client_secret": creds["client_secret"], "scope": scope})


def test_the_org_url_is_announced_and_named_in_every_url_the_api_writes(contoso: RunningSandbox) -> None:
    """Credentials, @odata.context, nextLink and the 401 challenge's resource_id name the org URL; the token
    endpoint stays on the sandbox's own address (issue 16)."""
    creds = contoso.credentials
    assert creds["org_url"] == ORG and creds["scope"] == f"{ORG}/.default"
    assert creds["api_url"] == f"{ORG}/api/data/v9.2"
    assert creds["token_url"].startswith(contoso.base_url)
    api = f"{contoso.base_url}/api/data/v9.2"
    headers = {"Authorization": f"Bearer {creds['access_token']}", "Prefer": "odata.maxpagesize=5"}
    page = httpx.get(f"{api}/contacts", headers=headers, params={"$select": "fullname"}).json()
    assert page["@odata.context"].startswith(f"{ORG}/api/data/v9.2/$metadata#contacts")
    assert page["@odata.nextLink"].startswith(f"{ORG}/api/data/v9.2/contacts?")
    # a client that maps the org's host to the sandbox (hosts file, proxy) follows the link as given
    relative = page["@odata.nextLink"].removeprefix(ORG)
    assert httpx.get(contoso.base_url + relative, headers=headers).status_code == 200
    denied = httpx.get(f"{api}/contacts")
    assert denied.status_code == 401 and f"resource_id={ORG}" in denied.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "scope",
    [f"{ORG}/.default", f"{ORG}:443/.default", f"{ORG}//.default", "https://CONTOSO.crm.dynamics.com/.default",
     f"{ORG}:443//.default"],
)
def test_scopes_naming_the_org_with_or_without_its_default_port_get_a_token(
    contoso: RunningSandbox, scope: str
) -> None:
    """Issue 16: ``https://host/.default`` = ``https://host:443/.default``; host case and a doubled slash do not
    matter (FACTS K)."""
    r = token(contoso, scope)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer" and r.json()["access_token"]


@pytest.mark.parametrize(
    "scope",
    [f"{ORG}:8443/.default", "http://contoso.crm.dynamics.com/.default", "https://fabrikam.crm.dynamics.com/.default",
     f"{ORG}/user_impersonation", f"{ORG}/api/.default", ""],
)
def test_other_scopes_are_refused_as_entra_id_does(contoso: RunningSandbox, scope: str) -> None:
    """AADSTS70011 invalid_scope, as Entra ID answers a scope that is not the org URL (FACTS K)."""
    r = token(contoso, scope)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope" and 70011 in r.json()["error_codes"]


def test_own_address_scope_still_works_without_the_setting(dynamics: RunningSandbox) -> None:
    """Issue 16, default: the org URL is the sandbox's own address (non-default port, so it must be written)."""
    assert dynamics.credentials["org_url"] == dynamics.base_url
    creds = dynamics.credentials
    r = httpx.post(creds["token_url"], verify=dynamics.verify, data={
        "grant_type": "client_credentials", "client_id": creds["client_id"],
        "client_secret": creds["client_secret"], "scope": creds["scope"]})
    assert r.status_code == 200


def test_an_org_url_that_is_not_an_origin_is_refused(tmp_path: Path) -> None:
    """Issue 16: ``--dynamics-org-url`` takes an origin (scheme and host); anything else stops the sandbox."""
    with pytest.raises(RuntimeError, match="dynamics-org-url"):
        start_sandbox(tmp_path / "bad", "--dynamics-org-url", "contoso.crm.dynamics.com/api", crm="dynamics",
                      scale=100)

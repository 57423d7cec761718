"""Issue 18, OPS-3: `crm-pipelines check` tells a refused login (reported at once, with the API's reason)
from a flaky API (reported after its retries, as no verdict on the credentials) and from credentials
accepted after retried faults. Salesforce with real-credential settings, its login host the sandbox."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from crm_pipelines.crm import check as credentials
from crm_pipelines.crm.connections import Secrets
from crm_pipelines.crm.metering import Meter
from crm_pipelines.crm.salesforce.auth import TOKEN_PATH
from crm_pipelines.crm.tokens import TOKENS
from crm_pipelines.settings import load_settings
from crm_pipelines_tests.crm.faulty_logins import set_faults
from crm_pipelines_tests.sandbox.conftest import RunningSandbox, start_sandbox


@pytest.fixture(scope="module")
def salesforce(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """Plain HTTP, so the real-credentials path (no sandbox CA bundle) can reach it."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("sf-check"), crm="salesforce", scale=200, seed=3)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def settings(salesforce: RunningSandbox, tmp_path: Path):
    TOKENS.clear()  # a check in this process logs in for real
    set_faults(salesforce)
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sandbox": {"data_dir": str(tmp_path / "no-sandboxes")},
                "connections": {
                    "hubspot": {"enabled": False},
                    "dynamics": {"enabled": False},
                    "salesforce": {"login_url": salesforce.base_url},
                },
            }
        )
    )
    yield load_settings(path)
    set_faults(salesforce)


def secrets(sandbox: RunningSandbox, secret: str | None = None) -> Secrets:
    creds = sandbox.credentials
    return Secrets(
        {"SALESFORCE_CLIENT_ID": creds["consumer_key"], "SALESFORCE_CLIENT_SECRET": secret or creds["consumer_secret"]}
    )


def token_attempts(monkeypatch: pytest.MonkeyPatch) -> list[Meter]:
    """The meters the check opens its clients with, to count its token requests."""
    meters: list[Meter] = []
    original = credentials.Meter

    def recording() -> Meter:
        meters.append(original())
        return meters[-1]

    monkeypatch.setattr(credentials, "Meter", recording)
    return meters


def seed_faulting_first_call_only(rate: float) -> int:
    """A fault seed whose first draw is a fault and whose second is not (the sandbox draws per request)."""
    return next(s for s in range(1000) if (r := random.Random(s)).random() < rate and r.random() >= rate)


def test_a_refused_login_is_reported_at_once_with_the_apis_reason(
    salesforce: RunningSandbox, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPS-3: a wrong client secret: INVALID at once (one token request), the API's invalid_client quoted,
    the secret nowhere in the text."""
    meters = token_attempts(monkeypatch)
    (result,) = asyncio.run(credentials.check_connections(settings, secrets(salesforce, "f" * 64)))
    assert (result.valid, result.verdict, result.target) == (False, "refused", "api")
    assert result.reason.startswith("credentials refused: ") and "HTTP 400 invalid_client" in result.reason
    assert "f" * 64 not in result.reason
    assert [c.status for c in meters[0].calls] == [400]


def test_an_api_that_keeps_failing_is_reported_after_its_retries_as_no_verdict(
    salesforce: RunningSandbox, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPS-3: the login host answers 503 to everything: after the check's retry budget the connection is
    reported not verified, saying it is the API and not the credentials, with the API's last answer."""
    monkeypatch.setattr(credentials, "CHECK_RETRY_BUDGET_S", 2.0)
    meters = token_attempts(monkeypatch)
    set_faults(salesforce, rate_503=1.0, path_prefix=TOKEN_PATH)
    (result,) = asyncio.run(credentials.check_connections(settings, secrets(salesforce)))
    assert (result.valid, result.verdict) == (False, "unreachable")
    assert "not verified" in result.reason and "says nothing about the credentials" in result.reason
    assert "HTTP 503 SERVER_UNAVAILABLE" in result.reason
    assert len(meters[0].calls) > 1 and {c.status for c in meters[0].calls} == {503}


def test_credentials_accepted_after_retried_faults_say_so(
    salesforce: RunningSandbox, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPS-3: the first token request is dropped; the retry logs in and the check says the credentials are
    valid, and that the API was flaky on the way."""
    meters = token_attempts(monkeypatch)
    seed = seed_faulting_first_call_only(0.5)
    set_faults(salesforce, rate_drop=0.5, seed=seed, path_prefix=TOKEN_PATH)
    (result,) = asyncio.run(credentials.check_connections(settings, secrets(salesforce)))
    assert (result.valid, result.verdict) == (True, "accepted")
    assert result.reason == "credentials accepted after 1 failed attempt (the API is flaky; retried)"
    assert [c.status for c in meters[0].calls][:2] == ["dropped", 200]

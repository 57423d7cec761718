"""Shared pytest fixtures.

Each group of fixtures below stands on its own; add new groups in their own section.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from crm_pipelines.dagster_events import batch_partition_events
from crm_pipelines.state.db import create_state_engine

# Dagster's event batching, as every deployment process gets it (crm_pipelines/definitions.py), for all
# tests rather than only those that happen to run after something imported the definitions.
batch_partition_events()

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------
# PostgreSQL: `make test` runs pytest under scripts/with-postgres, which starts a throw-away server
# and exports its connection (CRM_PIPELINES_TEST_PG_URL and DAGSTER_PG_*).
# --------------------------------------------------------------------------------------------------

PG_URL_ENV = "CRM_PIPELINES_TEST_PG_URL"


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL database.

    Outside CI, tests that need it are skipped when it is not configured; in CI (`CI=true`) a missing
    database is an error.
    """
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    message = f"{PG_URL_ENV} is not set: run the tests with `make test` (scripts/with-postgres)"
    if _running_in_ci():
        pytest.fail(f"{message}; in CI the PostgreSQL tests must not be skipped", pytrace=False)
    pytest.skip(message)


# --------------------------------------------------------------------------------------------------
# Dagster instance on the repository's own dagster.yaml (PostgreSQL storage).
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def dagster_pg_instance(pg_url: str, tmp_path: Path) -> Iterator[DagsterInstance]:
    """A `DagsterInstance` built from the repo's `dagster.yaml`, storing in the test PostgreSQL.

    The file is copied unchanged into a temporary DAGSTER_HOME (local artifacts and compute logs land
    there); its storage reads the DAGSTER_PG_* variables exported by scripts/with-postgres. The
    database is shared by the session, so tests look up their own runs by run id. The instance is
    disposed of when the test ends.
    """
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


# --------------------------------------------------------------------------------------------------
# The state database on both backends: SQLite (the zero-set-up default) and PostgreSQL (production, CI).
# --------------------------------------------------------------------------------------------------


STATE_BACKENDS = ["sqlite", "postgresql"]


def new_state_url(backend: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    """A fresh state database on ``backend``: a file in ``tmp`` (SQLite) or a database of its own in the test
    PostgreSQL server (skipped or failed as the ``pg_url`` fixture says when there is none). PostgreSQL
    databases are not dropped: scripts/with-postgres throws the whole server away after the run."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'state.sqlite3'}"
    import uuid

    import sqlalchemy as sa

    base = request.getfixturevalue("pg_url")
    name = f"state_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=STATE_BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database on each backend (PostgreSQL: its own database in the test server)."""
    return new_state_url(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=STATE_BACKENDS)
def module_state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``state_url`` made once per module, for a module whose tests share one costly set-up per backend."""
    return new_state_url(request.param, tmp_path_factory.mktemp(f"state-{request.param}"), request)


@pytest.fixture
def state_engine(state_url: str):
    engine = create_state_engine(state_url)
    yield engine
    engine.dispose()

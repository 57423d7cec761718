"""What every CRM sandbox has in common: a data directory, the universe it draws from, admin endpoints.

Admin endpoints live under ``/__sandbox__/`` on each sandbox's own port (see ``ADMIN_ENDPOINTS``); they
are never rate limited or faulted, so a test can always observe and steer the sandbox.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp

from crm_pipelines.sandbox.faults import (
    ADMIN_PREFIX,
    FaultBodies,
    FaultConfig,
    FaultInjectionMiddleware,
    FaultState,
)
from crm_pipelines.sandbox.universe import Universe

ADMIN_ENDPOINTS = {
    f"GET {ADMIN_PREFIX}/": "this index",
    f"GET {ADMIN_PREFIX}/stats": "live and deleted record counts per object, keyed by the API's object name",
    f"GET {ADMIN_PREFIX}/usage": "API calls received per endpoint since the last reset",
    f"GET {ADMIN_PREFIX}/manifest": "the data generator's expected counts for this sandbox's seed and scale",
    f"GET {ADMIN_PREFIX}/faults": "the fault and rate-limit configuration in force",
    f"PUT {ADMIN_PREFIX}/faults": 'replace it (JSON; see FaultConfig), e.g. {"rate_503": 0.2}',
    f"DELETE {ADMIN_PREFIX}/faults": "back to no faults and the published rate limits",
    f"POST {ADMIN_PREFIX}/reset": "regenerate the data from the seed (body may set seed and scale)",
    f"POST {ADMIN_PREFIX}/ui/{{object}}": "create a record as a person in the CRM's UI would (the API's object name)",
    f"PATCH {ADMIN_PREFIX}/ui/{{object}}/{{id}}": "edit a record as a person would (bumps modification times)",
    f"DELETE {ADMIN_PREFIX}/ui/{{object}}/{{id}}": "delete a record as a person would",
    f"... {ADMIN_PREFIX}/ui/...?at=<ISO time>": "any ui action made at that past time (modification times, history)",
    f"GET|PUT {ADMIN_PREFIX}/settings": '(Salesforce) org settings, e.g. {"state_country_picklists": true}, '
    '{"bulk_query_seconds": 5}',
    f"POST {ADMIN_PREFIX}/oauth/expire": "let every issued OAuth access token expire now",
}


@dataclass(frozen=True)
class UniverseSpec:
    seed: int
    scale: int


class CrmSandbox(abc.ABC):
    """One CRM API emulator. Subclasses provide the API routes, UI actions and their own storage."""

    name: ClassVar[str]
    default_port: ClassVar[int]

    def __init__(self, data_dir: Path, spec: UniverseSpec) -> None:
        self.data_dir = data_dir
        self.spec = spec
        self.faults = FaultState()
        self.base_url = ""

    # -- provided by each CRM -----------------------------------------------------------------------
    @abc.abstractmethod
    def open(self, *, reset: bool, progress: Any = print) -> None:
        """Open the persisted state; seed it from the universe when new or when ``reset``."""

    @abc.abstractmethod
    def credentials(self) -> dict[str, Any]:
        """What a client needs to authenticate against this sandbox."""

    @abc.abstractmethod
    def stats(self) -> dict[str, dict[str, int]]: ...

    @abc.abstractmethod
    def manifest(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def api_routes(self) -> list[BaseRoute]: ...

    @abc.abstractmethod
    def ui_routes(self) -> list[BaseRoute]: ...

    @abc.abstractmethod
    def fault_bodies(self) -> FaultBodies: ...

    def http_protocol(self) -> str | type[asyncio.Protocol]:
        """uvicorn's ``http`` protocol for this sandbox (a sandbox may re-spell header names, see header_case)."""
        return "httptools"

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Per-sandbox options from ``sandbox serve`` (e.g. ``--salesforce-bulk-seconds``); none by default."""
        if settings:
            raise ValueError(f"unknown {self.name} settings {sorted(settings)}")

    def configure_faults(self, config: FaultConfig) -> None:
        """Subclasses extend this to apply the rate-limit part of the configuration."""
        self.faults.configure(config)

    def set_base_url(self, base_url: str) -> None:
        self.base_url = base_url

    # -- shared -------------------------------------------------------------------------------------
    def universe(self) -> Universe:
        return Universe(self.spec.seed, self.spec.scale)

    def asgi_app(self) -> ASGIApp:
        api = Router(routes=self.api_routes())
        admin_routes = [
            Route(f"{ADMIN_PREFIX}/", self._index, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/stats", self._stats, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/usage", self._usage, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/manifest", self._manifest, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/faults", self._get_faults, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/faults", self._put_faults, methods=["PUT"]),
            Route(f"{ADMIN_PREFIX}/faults", self._clear_faults, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/reset", self._reset, methods=["POST"]),
            *self.ui_routes(),
        ]
        app = Starlette(routes=[*admin_routes, *api.routes])
        return FaultInjectionMiddleware(app, api, self.faults, self.fault_bodies())

    async def _index(self, request: Request) -> Response:
        return JSONResponse({"sandbox": self.name, "base_url": self.base_url, "endpoints": ADMIN_ENDPOINTS})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _usage(self, request: Request) -> Response:
        usage = dict(sorted(self.faults.usage.items()))
        return JSONResponse({"total": sum(usage.values()), "endpoints": usage})

    async def _manifest(self, request: Request) -> Response:
        return JSONResponse(self.manifest())

    async def _get_faults(self, request: Request) -> Response:
        return JSONResponse(self.faults.config.model_dump())

    async def _put_faults(self, request: Request) -> Response:
        try:
            config = FaultConfig.model_validate(orjson.loads(await request.body() or b"{}"))
        except (ValidationError, orjson.JSONDecodeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        self.configure_faults(config)
        return JSONResponse(config.model_dump())

    async def _clear_faults(self, request: Request) -> Response:
        self.configure_faults(FaultConfig())
        return JSONResponse(self.faults.config.model_dump())

    async def _reset(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        self.spec = UniverseSpec(int(body.get("seed", self.spec.seed)), int(body.get("scale", self.spec.scale)))
        started = time.monotonic()
        self.open(reset=True, progress=lambda _: None)
        self.faults.usage.clear()
        self.configure_faults(FaultConfig())
        return JSONResponse(
            {
                "seed": self.spec.seed,
                "scale": self.spec.scale,
                "seconds": round(time.monotonic() - started, 3),
                "stats": self.stats(),
            }
        )

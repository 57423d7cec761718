"""``crm-pipelines sandbox serve`` and ``demo``: open, seed, bind, announce, serve."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from crm_pipelines.sandbox.base import ADMIN_ENDPOINTS, CrmSandbox, UniverseSpec
from crm_pipelines.sandbox.endpoints import ENDPOINTS_FILE
from crm_pipelines.sandbox.faults import FaultConfig
from crm_pipelines.sandbox.registry import SANDBOXES
from crm_pipelines.sandbox.server import Tls, base_url, bind, serve_all
from crm_pipelines.sandbox.tls import ensure_local_ca_certificate


@dataclass
class ServeOptions:
    data_dir: Path
    seed: int
    scale: int
    only: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    tls: bool = False
    cert: Path | None = None
    key: Path | None = None
    reset: bool = False
    rate_limits: bool = True
    as_json: bool = False
    demo: bool = False
    # per sandbox: {"salesforce": {"bulk_query_seconds": 0}, "dynamics": {"org_url": "https://..."}}
    settings: dict[str, dict] = field(default_factory=dict)


def _tls(options: ServeOptions) -> Tls | None:
    if options.cert or options.key:
        if not (options.cert and options.key):
            raise SystemExit("--cert and --key go together")
        return Tls(options.cert, options.key, None)
    if not options.tls:
        return None
    files = ensure_local_ca_certificate(options.data_dir / "tls")
    return Tls(files.certfile, files.keyfile, files.ca_bundle)


def announcement(sandboxes: list[CrmSandbox], tls: Tls | None) -> dict:
    out: dict = {s.name: {"base_url": s.base_url, "credentials": s.credentials()} for s in sandboxes}
    out["ca_bundle"] = str(tls.ca_bundle.resolve()) if tls and tls.ca_bundle else None
    return out


def _describe(info: dict, sandboxes: list[CrmSandbox], options: ServeOptions) -> str:
    lines = [f"crm_pipelines sandboxes (seed {options.seed}, scale {options.scale}, data in {options.data_dir}):"]
    for s in sandboxes:
        stats = ", ".join(f"{k} {v['live']}" for k, v in s.stats().items())
        creds = info[s.name]["credentials"]
        lines += [
            f"  {s.name:<10} {s.base_url}   ({stats})",
            f"             access token: {creds.get('access_token', '(see --json)')}",
        ]
    if info["ca_bundle"]:
        lines.append(f"  CA bundle: {info['ca_bundle']}  (REQUESTS_CA_BUNDLE / SSL_CERT_FILE / ssl_ca_cert)")
    lines.append("  admin endpoints on every sandbox:")
    lines += [f"    {k:<42} {v}" for k, v in ADMIN_ENDPOINTS.items()]
    if options.demo and "hubspot" in info:
        hs = info["hubspot"]
        lines += [
            "",
            "Try it (HubSpot's own SDK works too: HubSpot(access_token=..., host=<base_url>)):",
            f"  curl -s -H 'Authorization: Bearer {hs['credentials']['access_token']}' \\",
            f"       '{hs['base_url']}/crm/v3/objects/contacts?limit=3&properties=email,firstname,lastname'",
            f"  curl -s {hs['base_url']}/__sandbox__/stats",
            f"  curl -s -X PUT {hs['base_url']}/__sandbox__/faults -d '{{\"rate_503\": 0.2}}'",
            "Stop with Ctrl-C; the data stays in the data directory (pass --reset to regenerate).",
        ]
    return "\n".join(lines)




def run(options: ServeOptions) -> None:
    names = options.only or list(SANDBOXES)
    unknown = [n for n in names if n not in SANDBOXES]
    if unknown:
        raise SystemExit(f"unknown sandbox {', '.join(unknown)}; available: {', '.join(SANDBOXES)}")
    options.data_dir.mkdir(parents=True, exist_ok=True)
    tls = _tls(options)
    spec = UniverseSpec(options.seed, options.scale)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if options.as_json else print
    bound = []
    for name in names:
        cls = SANDBOXES[name]
        sock = bind(options.host, options.ports.get(name, cls.default_port))
        sandbox = cls(options.data_dir, spec)
        sandbox.set_base_url(base_url(options.host, sock, tls))
        try:
            sandbox.apply_settings(options.settings.get(name, {}))
        except ValueError as e:
            raise SystemExit(str(e)) from None
        sandbox.open(reset=options.reset, progress=log)
        sandbox.configure_faults(FaultConfig(rate_limits_enabled=options.rate_limits))
        bound.append((sandbox, sock))
    sandboxes = [s for s, _ in bound]
    info = announcement(sandboxes, tls)

    endpoints = options.data_dir / ENDPOINTS_FILE

    def ready() -> None:
        # Clients configured without credentials find the running sandboxes here (TOP-2). The tokens are
        # the sandbox's own, not a user's secret.
        endpoints.write_text(json.dumps(info, indent=2))
        if options.as_json:
            print(json.dumps(info), flush=True)
            print(_describe(info, sandboxes, options), file=sys.stderr, flush=True)
        else:
            print(_describe(info, sandboxes, options), flush=True)

    try:
        asyncio.run(serve_all(bound, tls, ready))
    finally:
        endpoints.unlink(missing_ok=True)

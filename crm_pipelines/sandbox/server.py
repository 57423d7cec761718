"""Serve several sandboxes from one process, each on its own loopback port, over HTTP or HTTPS."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from crm_pipelines.sandbox.base import CrmSandbox


@dataclass(frozen=True)
class Tls:
    certfile: Path
    keyfile: Path
    ca_bundle: Path | None


class _Server(uvicorn.Server):
    # Several servers share one loop; signals are handled once for all of them in serve_all().
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """Bind before serving, so port 0 resolves to a real port that can be announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only switches Nagle off (TCP_NODELAY) for sockets that say so, and
    # with Nagle on, every keep-alive response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {e.strerror} (choose another port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_url(host: str, sock: socket.socket, tls: Tls | None) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


async def serve_all(
    sandboxes: list[tuple[CrmSandbox, socket.socket]], tls: Tls | None, on_ready: Callable[[], None]
) -> None:
    servers = []
    for sandbox, sock in sandboxes:
        config = uvicorn.Config(
            sandbox.asgi_app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=sandbox.http_protocol(),
            ssl_certfile=str(tls.certfile) if tls else None,
            ssl_keyfile=str(tls.keyfile) if tls else None,
            timeout_keep_alive=30,
        )
        servers.append((_Server(config), sock))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s, _ in servers])
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    while not all(server.started for server, _ in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    on_ready()
    await asyncio.gather(*tasks)

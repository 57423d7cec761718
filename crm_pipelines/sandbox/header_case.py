"""Response header names spelled as the real API spells them.

HTTP says header names are case-insensitive, but clients look them up case-sensitively (a plain ``dict`` of
headers, ``headers["Sforce-Locator"]``). Starlette and uvicorn both lower-case every name, and uvicorn does
it while it writes the response head, after any ASGI middleware; so the spelling is restored where the head
meets the socket: a uvicorn HTTP protocol whose transport re-spells the names of each response head.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD_START = b"HTTP/1.1 "


def title_case(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


class _Spelling:
    def __init__(self, spellings: Mapping[str, str]) -> None:
        self.known = {k.lower().encode("latin-1"): v.encode("latin-1") for k, v in spellings.items()}
        self.cache: dict[bytes, bytes] = {}

    def name(self, name: bytes) -> bytes:
        spelled = self.cache.get(name)
        if spelled is None:
            spelled = self.known.get(name) or title_case(name.decode("latin-1")).encode("latin-1")
            self.cache[name] = spelled
        return spelled

    def head(self, data: bytes) -> bytes:
        """``HTTP/1.1 200 OK\\r\\ncontent-type: …`` → ``…\\r\\nContent-Type: …`` (names only, values untouched)."""
        head, sep, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        out = [lines[0]]
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            out.append(self.name(name) + colon + value if colon else line)
        return b"\r\n".join(out) + sep + rest


class _SpellingTransport:
    """The connection's transport, re-spelling response heads on their way out; everything else as is."""

    def __init__(self, transport: asyncio.Transport, spelling: _Spelling) -> None:
        self._transport = transport
        self._spelling = spelling

    def write(self, data: bytes | bytearray | memoryview) -> None:
        raw = bytes(data)
        self._transport.write(self._spelling.head(raw) if raw.startswith(_HEAD_START) else raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def header_spelling_protocol(spellings: Mapping[str, str]) -> type[asyncio.Protocol]:
    """A uvicorn ``http=`` protocol class writing header names as ``spellings`` says (others title-cased)."""
    spelling = _Spelling(spellings)

    class SpelledHeadersProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = _SpellingTransport(transport, spelling)  # type: ignore[assignment]

    return SpelledHeadersProtocol

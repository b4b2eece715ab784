"""uvicorn's httptools protocol, writing each response's head together with its body.

uvicorn writes the status line and headers when the app sends `http.response.start` and the
body on `http.response.body`: two `write()` syscalls per response, and Envoy woken twice.
`CoalescingHttpToolsProtocol` holds the head back until the next write of the connection (the
body, sent in the same loop iteration by every non-streaming response) and writes both with
one `writelines` (one `writev`, no copy). If nothing follows in that iteration (a streaming
response whose first chunk is not ready yet) the head is written alone when the loop regains
control, so a stream still starts at once and streams chunk by chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """The connection's transport, holding back a response head (see module doc)."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        elif data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._head = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        """Nothing followed in the head's loop iteration: write it alone."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

"""A stored file streamed from a service's GetLocalObject (ops' documents, repogen's
artifacts: the local storage driver's signed URLs), as the gateway serves it: the first
message (content type, filename, size) is read before any HTTP response starts, so a refusal
(bad or expired token, no such object) is a problem response; the bytes follow message by
message and are never held whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from zenops_kit.errors import ErrorDetail

from ..errors import UpstreamError


@dataclass(frozen=True)
class LocalObject:
    """A stored file being read from a service: its description (the stream's first message) and
    the rest of its bytes. `chunks()` must be consumed or `close()`d."""

    content_type: str
    filename: str
    size_bytes: int
    first_data: bytes
    _call: grpc.aio.UnaryStreamCall
    _messages: AsyncIterator[Any]
    _service: str

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            if self.first_data:
                yield self.first_data
            try:
                async for message in self._messages:
                    if message.data:
                        yield message.data
            except grpc.aio.AioRpcError as err:
                raise UpstreamError.from_rpc_error(self._service, err) from None
        finally:
            self.close()

    def close(self) -> None:
        self._call.cancel()  # a no-op once the stream has ended


async def open_object_stream(service: str, call: grpc.aio.UnaryStreamCall) -> LocalObject:
    """Read the first message of a started GetLocalObject call. (By iteration, not read(): a
    client interceptor may wrap the response stream.)"""
    messages = aiter(call)
    try:
        first = await anext(messages)
    except grpc.aio.AioRpcError as err:
        raise UpstreamError.from_rpc_error(service, err) from None
    except StopAsyncIteration:
        # The stream ended without describing the object: the service's fault, never the caller's.
        raise UpstreamError(
            service, ErrorDetail(code=grpc.StatusCode.INTERNAL, message="empty object stream", reason="INTERNAL")
        ) from None
    except BaseException:
        call.cancel()
        raise
    return LocalObject(
        content_type=first.content_type,
        filename=first.filename,
        size_bytes=first.size_bytes,
        first_data=first.data,
        _call=call,
        _messages=messages,
        _service=service,
    )

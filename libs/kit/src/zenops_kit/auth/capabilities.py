"""`@requires("users.read")`: capability checks declared on the servicer method itself."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from ..context import current_context


def requires(*capabilities: str) -> Callable:
    """Decorate an async servicer method (unary, or server-streaming as an async generator or
    a coroutine writing to the context): the caller must hold every capability named, else
    PERMISSION_DENIED/MISSING_CAPABILITY (UNAUTHENTICATED without a verified caller), before
    the body runs."""
    if not capabilities or not all(isinstance(c, str) and c for c in capabilities):
        raise ValueError("requires() needs at least one capability name")

    def decorate(method: Callable) -> Callable:
        if inspect.isasyncgenfunction(method):

            @functools.wraps(method)
            async def stream(*args, **kwargs):
                current_context().require(*capabilities)
                async for item in method(*args, **kwargs):
                    yield item

            wrapper = stream
        elif inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def unary(*args, **kwargs):
                current_context().require(*capabilities)
                return await method(*args, **kwargs)

            wrapper = unary
        else:
            raise TypeError(f"@requires decorates async servicer methods, not {method!r}")
        # What a test or a capability table can read back.
        wrapper.required_capabilities = frozenset(capabilities)
        return wrapper

    return decorate

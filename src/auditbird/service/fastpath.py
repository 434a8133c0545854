"""The lean way in for ``POST /v1/events``: straight to the handler, past the router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LeanPath"]


class LeanPath:
    """Pure ASGI: ``method path`` -> ``handler(request) -> Response``, everything else -> ``app``.

    Sits inside the metrics middleware (which it tells the route template through
    ``scope["route"]``) and outside the router: no route matching, no dependency injection,
    no per-request exit stacks. Errors are answered by the app's own exception handlers, as
    the router would have; anything they do not handle propagates as it would have.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        method: str,
        path: str,
        handler: Callable[[Request], Awaitable[Response]],
        route: Any,
    ) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.handler = handler
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        request = Request(scope, receive, send)
        try:
            response = await self.handler(request)
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(scope: Scope, exc: Exception) -> Any:
    handlers = getattr(scope.get("app"), "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None  # the server-error handler's business, outside this middleware
        if cls in handlers:
            return handlers[cls]
    return None

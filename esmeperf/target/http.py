"""Shared HTTP helpers: JSON responses, Go-style error bodies and CORS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .wire import dumps

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(obj: Any, status: int = 200) -> web.Response:
    """Compact JSON with Content-Type application/json."""
    return web.Response(status=status, text=dumps(obj), content_type="application/json")


def empty_response(status: int = 200) -> web.Response:
    """ESME's "empty response": the status and a JSON content type, no body."""
    response = web.Response(status=status)
    response.headers["Content-Type"] = "application/json"
    return response


def error_response(status: int, message: Any) -> web.Response:
    """{"statusCode", "message", "error": reason phrase} as the Go and NestJS services send."""
    return json_response({"statusCode": status, "message": message,
                          "error": HTTPStatus(status).phrase}, status)


def cors_middleware(methods: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Add the CORS headers of the service to every non-upgrade response; answer OPTIONS."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
            response.headers["Allow"] = methods
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                # aiohttp's own 404/405 answers become JSON errors with CORS like the rest.
                if exc.status < 400:
                    raise
                response = error_response(exc.status, exc.reason)
        if not isinstance(response, web.WebSocketResponse):
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = "Content-Type,Authorization"
        return response

    return middleware


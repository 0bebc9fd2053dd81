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


NEST, GO = "nest", "go"  # how a service answers a path or method it has no route for


def unmatched_response(style: str, status: int, request: web.Request) -> web.Response:
    """What ESME's service answers where no route matches (contrib/esme-real/conformance.py):
    NestJS on Express says 404 `Cannot <METHOD> <path>` as JSON for an unknown path and for a
    known path's other methods alike; Go's httprouter says `404 page not found` or
    `Method Not Allowed` as text."""
    if style == NEST:
        return error_response(404, f"Cannot {request.method} {request.path}")
    if status == 405:
        return web.Response(status=405, text="Method Not Allowed\n",
                            content_type="text/plain", charset="utf-8")
    return web.Response(status=404, text="404 page not found\n", content_type="text/plain",
                        charset="utf-8")


def cors_middleware(methods: str, unmatched: str = GO
                    ) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Add the CORS headers of the service to every non-upgrade response; answer OPTIONS;
    answer a request no route matches as the service does (`unmatched`: NEST or GO)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
            response.headers["Allow"] = methods
        else:
            try:
                response = await handler(request)
            except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
                response = unmatched_response(unmatched, exc.status, request)
            except web.HTTPException as exc:
                # aiohttp's other error answers become JSON errors with CORS like the rest.
                if exc.status < 400:
                    raise
                response = error_response(exc.status, exc.reason)
        if not isinstance(response, web.WebSocketResponse):
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = "Content-Type,Authorization"
        return response

    return middleware


"""The error boundary of the HTTP edge: every failure leaves as the published envelope.

The envelope follows the surface: under ``/v1/messages`` (the Anthropic Messages surface) it is
Anthropic's ``{"type": "error", "error": {"type", "message"}, "request_id"}``; everywhere else
the reference exchange's envelope together with OpenAI's. The status is the same on both
surfaces (the reference exchange's Messages surface mirrors its chat-completions statuses).
Our own errors render themselves; aiohttp's HTTP exceptions (unknown path, wrong method, body too
large) are translated into the same envelope; anything unexpected is logged with the request id
and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from gridgate.api.state import STATE
from gridgate.errors import (
    BadRequest,
    GridgateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    http_status,
)

log = logging.getLogger("gridgate.api")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("gridgate_request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestIds:
    """Request ids unique across processes and restarts: a random per-process prefix and a
    counter (a counter is ~20× cheaper than drawing random bytes for every request)."""

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(6)
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():010x}"


REQUEST_IDS: web.AppKey[RequestIds] = web.AppKey("gridgate_request_ids")


ANTHROPIC_SURFACE = "/v1/messages"


def is_anthropic_surface(path: str) -> bool:
    return path.startswith(ANTHROPIC_SURFACE)


def error_response(
    error: GridgateError, request_id: str, *, anthropic: bool = False
) -> web.Response:
    headers = {"x-request-id": request_id, **error.headers}
    if anthropic:
        headers["request-id"] = request_id
        body = msgspec.json.encode({**error.anthropic_body(), "request_id": request_id})
    else:
        body = error.render()
    return web.Response(
        body=body,
        status=http_status(error),
        content_type="application/json",
        headers=headers,
    )


def _translate(exc: web.HTTPException, request: web.Request) -> GridgateError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(
            f"request body too large: at most {request.app[STATE].settings.server.max_body_bytes} bytes"
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        error: GridgateError = MethodNotAllowed(
            f"method {request.method} not allowed on {request.path}; use {allowed}"
        )
        error.headers["Allow"] = allowed
        return error
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no such endpoint: {request.method} {request.path}")
    if exc.status == 400:
        return BadRequest(exc.reason or "bad request")
    return GridgateError(exc.reason or "error")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.app[REQUEST_IDS]()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except GridgateError as exc:
        return error_response(exc, request_id, anthropic=is_anthropic_surface(request.path))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        translated = _translate(exc, request)
        response = error_response(
            translated, request_id, anthropic=is_anthropic_surface(request.path)
        )
        response.set_status(exc.status)
        return response
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id})
        return error_response(
            GridgateError("internal error; it has been logged"),
            request_id,
            anthropic=is_anthropic_surface(request.path),
        )
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response

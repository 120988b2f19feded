"""The error boundary of the HTTP edge: every failure leaves as the published envelope.

The envelope follows the surface: under ``/v1/messages`` (the Anthropic Messages surface) it is
Anthropic's ``{"type": "error", "error": {"type", "message"}, "request_id"}``; everywhere else
the reference exchange's envelope together with OpenAI's. So does the status: the Anthropic
surface answers Anthropic's (``errors.anthropic_http_status``: 400 for every invalid request,
529 when no offer can serve), so that Anthropic's SDKs raise the exception they would against
Anthropic's API; everywhere else the tree's own. This is the one place a surface is chosen.
Our own errors render themselves; aiohttp's HTTP exceptions (unknown path, wrong method, body too
large) are translated into the same envelope; anything unexpected is logged with the request id
and answered with a generic 500 that reveals nothing — except the database being unreachable,
which is a 503 with ``Retry-After`` (the same for every request while it lasts, logged once).

Request ids: every request gets gridgate's own unique id (``REQUEST_ID``, the key of its usage
record). A client's ``X-Request-Id`` of 1–128 chars of ``[A-Za-z0-9._:@/+=-]`` is honoured
(``CLIENT_REQUEST_ID``): it becomes the visible id — the ``x-request-id`` header, the
``request_id`` of log lines and of Anthropic error bodies — and ``x-gridgate-request-id`` then
carries gridgate's own id. The middleware also feeds the HTTP metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from gridgate.core.outage import RETRY_AFTER_SECONDS
from gridgate.echo import capped
from gridgate.errors import (
    BadRequest,
    GridgateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    anthropic_http_status,
    http_status,
)
from gridgate.logs import CURRENT_REQUEST, RequestContext, route_of, valid_request_id
from gridgate.state import STATE
from gridgate.storage.ports.errors import StoreUnavailable

log = logging.getLogger("gridgate.api")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("gridgate_request_id", str)
CLIENT_REQUEST_ID: web.RequestKey[str | None] = web.RequestKey("gridgate_client_request_id")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestIds:
    """Request ids unique across processes and restarts: a random per-process prefix and a
    counter (a counter is ~20× cheaper than drawing random bytes for every request)."""

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(6)
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():010x}"

    def ours(self, request_id: str) -> bool:
        """Whether this process gave ``request_id`` (its usage record is written from here)."""
        return request_id.startswith(self._prefix)


REQUEST_IDS: web.AppKey[RequestIds] = web.AppKey("gridgate_request_ids")


ANTHROPIC_SURFACE = "/v1/messages"


def is_anthropic_surface(path: str) -> bool:
    return path.startswith(ANTHROPIC_SURFACE)


# the surface both SDKs call; Anthropic's send ``anthropic-version`` on every request, OpenAI's never
SHARED_SURFACE = "/v1/models"


def is_anthropic_client(request: web.Request) -> bool:
    """An Anthropic SDK calling ``/v1/models`` (or ``/v1/models/{id}``): answered, errors
    included, in Anthropic's shape."""
    path = request.path
    return "anthropic-version" in request.headers and (
        path == SHARED_SURFACE or path.startswith(SHARED_SURFACE + "/")
    )


def visible_request_id(request: web.Request) -> str:
    """The id the client sees: its own ``X-Request-Id`` when honoured, else gridgate's."""
    return request.get(CLIENT_REQUEST_ID) or request[REQUEST_ID]


def request_id_headers(request: web.Request, *, anthropic: bool = False) -> dict[str, str]:
    """``x-request-id`` (and Anthropic's ``request-id``) with the visible id,
    ``x-gridgate-request-id`` with gridgate's own when the client chose the visible one, and
    ``x-grid-request-id`` (the reference exchange's name: the usage receipt's id) always."""
    own = request[REQUEST_ID]
    client = request.get(CLIENT_REQUEST_ID)
    headers = {"x-request-id": client or own, "x-grid-request-id": own}
    if anthropic:
        headers["request-id"] = client or own
    if client:
        headers["x-gridgate-request-id"] = own
    return headers


def error_response(error: GridgateError, request: web.Request) -> web.Response:
    anthropic = is_anthropic_surface(request.path) or is_anthropic_client(request)
    headers = {**request_id_headers(request, anthropic=anthropic), **error.headers}
    if anthropic:
        request_id = visible_request_id(request)
        body = msgspec.json.encode({**error.anthropic_body(), "request_id": request_id})
        status = anthropic_http_status(error)
    else:
        body = error.render()
        status = http_status(error)
    return web.Response(
        body=body,
        status=status,
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
            f"method {request.method} not allowed on {capped(request.path)}; use {allowed}"
        )
        error.headers["Allow"] = allowed
        return error
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no such endpoint: {request.method} {capped(request.path)}")
    if exc.status == 400:
        return BadRequest(exc.reason or "bad request")
    return GridgateError(exc.reason or "error")


def _unavailable(exc: StoreUnavailable, request: web.Request) -> ServiceUnavailable:
    """The database is unreachable: 503 to retry shortly, noted once per outage (no traceback
    per request; ``core/outage.py`` logs its start and end)."""
    state = request.app.get(STATE)
    if state is not None:
        state.outage.refused(exc)
    return ServiceUnavailable(
        "the service is temporarily unavailable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request.app[REQUEST_IDS]()
    request[REQUEST_ID] = request_id
    client_id = valid_request_id(request.headers.get("X-Request-Id"))
    request[CLIENT_REQUEST_ID] = client_id
    # not reset: aiohttp runs each request in a task of its own (a copy of the context), and
    # the access log line, written after this returns, carries the id too
    CURRENT_REQUEST.set(
        RequestContext(client_id, request_id, started)
        if client_id
        else RequestContext(request_id, None, started)
    )
    status = 500
    try:
        response = await _answer(request, handler)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect (< 400) passes through
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        state = request.app.get(STATE)
        if state is not None:
            state.metrics.observe_http(
                route_of(request), request.method, status, time.perf_counter() - started
            )


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except GridgateError as exc:
        return error_response(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_translate(exc, request), request)
        response.set_status(exc.status)
        return response
    except StoreUnavailable as exc:
        return error_response(_unavailable(exc, request), request)
    except Exception:
        log.exception("unhandled error", extra={"request_id": visible_request_id(request)})
        return error_response(GridgateError("internal error; it has been logged"), request)
    if not response.prepared:
        response.headers.update(request_id_headers(request))
    return response
